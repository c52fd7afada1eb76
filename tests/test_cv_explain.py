"""Cross-validation on cached features, and Grad-CAM on a synthetic object."""


import numpy as np
import pytest
from PIL import Image, ImageDraw

import inceptune
from conftest import NARROW_WEIGHTS, SHARED_WEIGHTS, SMALL_SIZE, requires_shared, run_cli
from contract import check_cv_folder
from inceptune.inference.gradcam import GradCam
from inceptune.runs import RunFolder


@requires_shared
def test_cv_runs_every_fold_on_the_cached_features(flowers_run, small_flowers, tmp_path):
    """The mechanics, on the narrow network (what cv's accuracy is worth: benchmarks and test-slow)."""
    proc = run_cli("cv", str(small_flowers), "--folds", "3", "--out", str(tmp_path / "cv"),
                   "--weights", str(NARROW_WEIGHTS), "--image-size", str(SMALL_SIZE), "--epochs", "5",
                   "--fine-tune-epochs", "1", "--batch-size", "16", "--search", "none", "--no-refit")
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "±" in proc.stdout and "out-of-fold predictions" in proc.stdout
    cv = check_cv_folder(tmp_path / "cv", images=60)
    # The train run of the same data left every feature in the cache: no image runs through the base again.
    assert cv["features"]["computed"] == 0 and cv["features"]["from_cache"] == 60
    folds = cv["per_fold"]
    assert len(folds) == 3 and sum(f["images"] for f in folds) == 60  # each image held out exactly once
    for f in folds:  # stratified: 12 per class in all, 4 per class per fold
        assert np.array(f["confusion_matrix"]).sum(axis=1).tolist() == [4] * 5
        assert f["fine_tune_epochs_run"] == 1
    accuracies = [f["accuracy"] for f in folds]
    assert cv["summary"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert cv["summary"]["accuracy"]["std"] == pytest.approx(np.std(accuracies, ddof=1))
    html = (tmp_path / "cv" / "report.html").read_text()
    assert 'id="cv-folds"' in html and "fold 3" in html


@requires_shared
def test_cv_with_more_folds_than_images_per_class_is_refused(small_flowers, tmp_path):
    proc = run_cli("cv", str(small_flowers), "--folds", "13", "--out", str(tmp_path / "cv"),
                   "--weights", str(NARROW_WEIGHTS), "--image-size", str(SMALL_SIZE))
    assert proc.returncode == 2 and "fewer than --folds 13" in proc.stderr and "Traceback" not in proc.stderr


def _scene(path, color, center, radius=36, size=224):
    """A coloured disc on a blank white background."""
    img = Image.new("RGB", (size, size), (255, 255, 255))
    x, y = center
    ImageDraw.Draw(img).ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


@pytest.fixture(scope="module")
def objects_run(tmp_path_factory):
    """Red vs blue discs anywhere on a white background; the model works at 299x299 (mixed10 is 8x8)."""
    root = tmp_path_factory.mktemp("objects")
    rng = np.random.default_rng(0)
    for name, color in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        for i in range(14):
            _scene(root / "data" / name / f"{i}.png", color, tuple(rng.integers(40, 184, 2)))
    return inceptune.train(str(root / "data"), out=str(root / "run"), weights=str(SHARED_WEIGHTS), image_size=299,
                           epochs=20, fine_tune_epochs=0, test_split=0.0)


@requires_shared
@pytest.mark.parametrize("center", [(72, 72), (152, 140)])
def test_grad_cam_puts_most_of_its_mass_on_the_object(objects_run, tmp_path, center):
    radius = 64  # the disc covers a quarter of the 224x224 image
    path = _scene(tmp_path / "red.png", (220, 30, 30), center, radius=radius)
    folder = RunFolder.open(objects_run.run)
    image = np.asarray(Image.open(path).convert("RGB"), dtype="float32")
    heatmap, probs = GradCam(folder.load_model(), 299)(image)
    assert folder.classes[int(np.argmax(probs))] == "red"  # correctly classified
    yy, xx = np.mgrid[:224, :224]
    inside = (xx - center[0]) ** 2 + (yy - center[1]) ** 2 <= radius ** 2
    assert heatmap.shape == (224, 224) and 0.0 <= heatmap.min() and heatmap.max() <= 1.0
    assert heatmap[inside].sum() > heatmap[~inside].sum()  # more mass inside than outside
    assert heatmap[inside].mean() > 2 * heatmap[~inside].mean()


@requires_shared
def test_explain_command_saves_an_overlay_per_image(objects_run, tmp_path):
    image = _scene(tmp_path / "in" / "blue.png", (30, 30, 220), (112, 112))
    (tmp_path / "in" / "notes.jpg").write_text("not an image")
    proc = run_cli("explain", str(objects_run.run), str(tmp_path / "in"), "--out", str(tmp_path / "cams"))
    assert proc.returncode == 0, proc.stderr
    assert f"{image}: blue" in proc.stdout and "skipped" in proc.stdout
    overlay = Image.open(tmp_path / "cams" / "blue.png")
    assert overlay.size[0] > 400
    proc = run_cli("explain", str(objects_run.run), str(image), "--class", "green")
    assert proc.returncode == 2 and "Unknown class 'green'" in proc.stderr
