"""The scale-out measurement tool runs end to end on small cases (one device here)."""

from gln_jax.tools import scaling


def test_classes_case_compares_sharded_and_single_runs():
    r = scaling.classes(num_classes=12, examples=48, width=8, chunk_size=16)
    assert r["devices"] >= 1 and r["classes"] == 12 and r["padded_classes"] >= 12
    assert r["init_sharded_vs_init_max_diff"] < 1e-6
    assert r["train_outputs_max_diff"] < 1e-5 and r["predict_max_diff"] < 1e-5
    assert r["argmax_agreement"] == 1.0
    assert 0 < r["peak_rss_mib_sharded_run"] <= r["peak_rss_mib"]

