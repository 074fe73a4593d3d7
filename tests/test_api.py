"""The Python API on data of other shapes than MNIST: real searches, exports and training."""
import json
import subprocess
import sys

import pytest

import archsearch
from conftest import digits_folder, write_blobs_npz, write_npz

QUICK = {"val_size": 200, "prune": False, "starts": 2}


def test_search_export_and_train_on_the_8x8_digits_folder(tmp_path):
    folder = digits_folder(tmp_path / "digits")
    study = archsearch.search(folder, 3000, trials=4, epochs=3, config=QUICK, device="cpu",
                              storage=f"sqlite:///{tmp_path}/s.db")
    assert study.study_name == "digits-b3000"
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) >= 2 and all(t.user_attrs["genome"]["in_shape"] == [1, 8, 8] for t in done)
    assert max(t.values[0] for t in done) > 20  # ten classes: learning, twice chance at least
    out = archsearch.export(study, tmp_path / "best")
    code = f"import sys; sys.path.insert(0, {str(out)!r}); import model; print(model.Net()(__import__('torch').zeros(2, 1, 8, 8)).shape)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "torch.Size([2, 10])" in r.stdout, r.stderr
    result = archsearch.train(out / "config.json", folder, epochs=1, device="cpu")
    assert result["params"] == json.loads((out / "config.json").read_text())["metrics"]["params"]


def test_a_search_on_images_resized_to_32x32_rgb(tmp_path):
    blobs = write_blobs_npz(tmp_path / "blobs.npz", n_train=600, n_test=100)
    study = archsearch.search(blobs, 5000, trials=2, epochs=1, image_size=32, channels=3, config=QUICK,
                              device="cpu", storage=f"sqlite:///{tmp_path}/s.db")
    assert study.user_attrs["settings"]["image_size"] == 32 and study.user_attrs["settings"]["channels"] == 3
    assert all(t.user_attrs["genome"]["in_shape"] == [3, 32, 32] for t in study.trials if "genome" in t.user_attrs)
    resumed = archsearch.search(study=study.study_name, storage=f"sqlite:///{tmp_path}/s.db", trials=3, device="cpu")
    shapes = {tuple(t.user_attrs["genome"]["in_shape"]) for t in resumed.trials if "genome" in t.user_attrs}
    assert len(resumed.trials) == 3 and shapes == {(3, 32, 32)}  # the study's shape, not the file's


def test_images_smaller_than_8x8_are_refused_before_a_study_exists(tmp_path):
    tiny = write_npz(tmp_path / "tiny.npz", n_train=300, shape=(6, 6))
    with pytest.raises(archsearch.ArchsearchError, match=r"images of 6x6 are smaller than the search space builds "
                                                          r"for \(8x8\); enlarge them \(--image-size 8\)"):
        archsearch.search(tiny, 3000, config={"val_size": 50}, device="cpu", storage=f"sqlite:///{tmp_path}/s.db")
    assert not (tmp_path / "s.db").exists()


def test_a_search_under_a_ram_limit_never_trains_a_model_over_it(tmp_path):
    blobs = write_blobs_npz(tmp_path / "blobs.npz", n_train=600, n_test=100)
    study = archsearch.search(blobs, 10000, max_ram=4000, trials=6, epochs=1, config={**QUICK, "starts": 3},
                              device="cpu", storage=f"sqlite:///{tmp_path}/s.db")
    built = [t for t in study.trials if "genome" in t.user_attrs]
    assert len(built) >= 4 and all(t.user_attrs["peak_ram"] <= 4000 for t in built)
    assert max(t.user_attrs["peak_ram"] for t in built) > 2000  # the limit binds, it is not met by luck
    done = [t for t in built if t.state.name == "COMPLETE"]
    cap = sorted(t.user_attrs["peak_ram"] for t in done)[len(done) // 2]
    out = archsearch.export(study, tmp_path / "e", max_ram=cap)  # export filters by the same figures
    assert json.loads((out / "config.json").read_text())["provenance"]["trial"] in {
        t.number for t in done if t.user_attrs["peak_ram"] <= cap}
    with pytest.raises(archsearch.ArchsearchError, match="no COMPLETE trial fits .* raise the limits"):
        archsearch.export(study, tmp_path / "f", max_ram=1000)


def test_a_limit_no_model_can_meet_is_refused_before_a_study_exists(tmp_path):
    blobs = write_blobs_npz(tmp_path / "blobs.npz", n_train=600, n_test=100)
    with pytest.raises(archsearch.ArchsearchError, match=r"smallest model the search can build .* bytes of peak RAM "
                                                          r"at minimum widths, over the limit of 500"):
        archsearch.search(blobs, 10000, max_ram=500, config=QUICK, device="cpu", storage=f"sqlite:///{tmp_path}/s.db")
    assert not (tmp_path / "s.db").exists()
