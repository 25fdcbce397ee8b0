"""Inside a rerun, the script's own choice of store is ignored: its runs stay in the
throwaway store that `cairn reproduce` gave it."""

import cairn


def test_set_tracking_uri_is_ignored_in_a_rerun(cairn_state, monkeypatch, tmp_path):
    monkeypatch.setenv("CAIRN_TRACKING_URI", str(tmp_path / "throwaway"))
    monkeypatch.setenv("CAIRN_REPRODUCE_STORE", str(tmp_path / "throwaway"))
    cairn.set_tracking_uri(tmp_path / "the-real-store")
    assert cairn.get_tracking_uri() == str(tmp_path / "throwaway")
    monkeypatch.delenv("CAIRN_REPRODUCE_STORE")
    cairn.set_tracking_uri(tmp_path / "the-real-store")
    assert cairn.get_tracking_uri() == str(tmp_path / "the-real-store")
