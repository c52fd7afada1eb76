"""inceptune audit: label issues, near-duplicates and leakage, outliers, photo quality; splits that keep
groups together; train --exclude/--relabel. The flowers5 checks run at 299 on ../shared, in the slow tier
(`./run test-slow`: about three minutes on 2 cores); the audit they share is built once per test run."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import inceptune
from conftest import NARROW_WEIGHTS, FLOWERS, SHARED_WEIGHTS, built_once, headless_chromium, make_color_dataset, merge_cache, \
    one_sentence_error, own_cache, \
    requires_shared, run_cli
from inceptune.data.fixes import apply_fixes
from inceptune.data.groups import merge_groups, with_name_groups
from inceptune.data.scan import ImageRecord
from inceptune.data.split import assign_splits
from inceptune.errors import UserError
from inceptune.features.neighbours import near_duplicate_pairs
from planted import move_to_wrong_class, photos, plant_near_duplicates

SIZE = 299  # label issues need the features of full-size photos (at 150 precision falls below 0.6)


def _records(names: list[str], label: str = "a", root: str = "/d") -> list[ImageRecord]:
    return [ImageRecord(f"{root}/{label}/{n}", label, f"{i:064x}") for i, n in enumerate(names)]


# --- groups and splits (pure logic) ---

def test_nohash_and_group_by_keep_a_group_in_one_split():
    names = [f"subject{k}_nohash_{v}.jpg" for k in range(20) for v in range(3)]
    records = with_name_groups(_records(names), "/d", None)
    assert {r.group for r in records} == {f"name:subject{k}" for k in range(20)}
    split = assign_splits(records, 0.2, 0.2, seed=3)
    by_group = {}
    for r in split:
        by_group.setdefault(r.group, set()).add(r.split)
    assert all(len(s) == 1 for s in by_group.values())
    assert {s for v in by_group.values() for s in v} == {"train", "val", "test"}

    patients = with_name_groups(_records([f"p{k % 7}/scan{k}.png" for k in range(35)]), "/d", r"^a/(p\d+)/")
    assert len({r.group for r in patients}) == 7
    carved = assign_splits(patients, 0.3, 0.0, seed=1)
    assert all(len({r.split for r in carved if r.group == g}) == 1 for g in {r.group for r in carved})
    with pytest.raises(UserError, match="capture groups"):
        with_name_groups(patients, "/d", r"(a)(b)")
    with pytest.raises(UserError, match="not a regular expression"):
        with_name_groups(patients, "/d", r"(")


def test_merged_groups_span_classes_and_keep_together():
    records = _records([f"x{k}.jpg" for k in range(30)], "a") + _records([f"y{k}.jpg" for k in range(30)], "b")
    records = [ImageRecord(r.path, r.label, f"{r.label}{k:063x}") for k, r in enumerate(records)]
    links = [(0, 30), (1, 2), (2, 3), (31, 32)]  # a cluster across classes, a chain, a pair
    merged = merge_groups(records, links)
    assert merged[0].group == merged[30].group and merged[1].group == merged[3].group
    assert merged[5].group is None  # unlinked records keep their content hash as the key
    for seed in range(5):
        split = {r.path: r.split for r in assign_splits(merged, 0.3, 0.3, seed)}
        for a, b in links:
            assert split[records[a].path] == split[records[b].path]


def test_near_duplicate_pairs_exact_and_indexed_find_the_same_copies():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 48))
    copies = base[:12] + rng.normal(scale=0.05, size=(12, 48))  # near-duplicates of the first 12
    look_alike = base[20] + rng.normal(scale=0.6, size=(15, 48))  # a dense family: similar, not copies
    features = np.concatenate([base, copies, look_alike])
    expected = {(k, 300 + k) for k in range(12)}
    for limit in (10_000, 0):  # exact, then the FAISS index
        i, j, s = near_duplicate_pairs(features, floor=0.5, exact_limit=limit)
        found = set(zip(i.tolist(), j.tolist()))
        assert expected <= found, limit
        assert not {p for p in found if p[0] >= 312 or p[1] >= 312}, "look-alikes are not duplicates"
        assert np.all(np.diff(s) <= 1e-6)  # most similar first


# --- fixes (pure logic on files) ---

def test_exclude_and_relabel_apply_a_fixes_csv_without_touching_files(tmp_path):
    root = make_color_dataset(tmp_path / "data", per_class=4)
    records = [ImageRecord(str(p), p.parent.name, f"{k:064x}") for k, p in enumerate(photos(root))]
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("path,issue,score,suggested_label,duplicate_of\n"
                     f"{root}/blue/blue_00.jpg,label,0.9,red,\n"
                     "red/red_01.jpg,near_duplicate,0.97,,red/red_00.jpg\n"
                     "gone/missing.jpg,label,0.5,blue,\n")
    relabelled, done = apply_fixes(records, str(root), None, str(fixes))
    assert [r.label for r in relabelled if r.path.endswith("blue_00.jpg")] == ["red"]
    assert done["relabel"]["images"] == 1 and done["relabel"]["unmatched"] == 1
    kept, done = apply_fixes(records, str(root), str(fixes), None)
    assert len(kept) == len(records) - 2 and done["exclude"]["images"] == 2  # a relative path matches too
    assert (root / "blue" / "blue_00.jpg").is_file() and (root / "red" / "red_01.jpg").is_file()
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nx.jpg,red\n")
    with pytest.raises(UserError, match="no 'path' column"):
        apply_fixes(records, str(root), str(bad), None)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(f"path,suggested_label\n{root}/red/red_00.jpg,purple\n")
    with pytest.raises(UserError, match="not a class"):
        apply_fixes(records, str(root), None, str(wrong))


def test_audit_cli_writes_its_three_files_and_refuses_bad_input(tmp_path):
    data = make_color_dataset(tmp_path / "colors", per_class=8)
    out = tmp_path / "audit"
    proc = run_cli("audit", str(data), "--weights", str(NARROW_WEIGHTS), "--image-size", "75", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["images"] == 16 and set(record["counts"]) >= {"label", "near_duplicate", "outlier", "blurry"}
    with open(out / "issues.csv") as f:
        assert next(csv.reader(f)) == ["path", "issue", "score", "suggested_label", "duplicate_of"]
    assert "Download accepted fixes" in (out / "audit.html").read_text()
    again = run_cli("audit", str(data), "--weights", str(NARROW_WEIGHTS), "--image-size", "75", "--out", str(out))
    assert "already holds an audit" in one_sentence_error(again)
    assert "does not exist" in one_sentence_error(run_cli("audit", str(tmp_path / "nowhere")))
    unused = run_cli("audit", str(data), "--epochs", "3")  # a recipe setting is train's, not audit's
    assert unused.returncode == 2 and "No such option: --epochs" in unused.stderr


# --- the must-shows, on flowers5 at 299 ---

def _audit(data: Path, out: Path) -> inceptune.workflows.audit.AuditResult:
    return inceptune.audit(str(data), weights=str(SHARED_WEIGHTS), image_size=SIZE, out=str(out))


@pytest.fixture(scope="session")
def mislabelled():
    """flowers5 with 8% of its photos moved to a wrong class (seeded), audited once per test run for every worker
    (built_once; each worker's feature cache then holds the audit's features, as train reads them)."""
    if not FLOWERS.is_dir() or not SHARED_WEIGHTS.is_file():
        pytest.skip(f"needs {FLOWERS} and {SHARED_WEIGHTS}")
    import os

    from inceptune.audits.report import Issue
    from inceptune.workflows.audit import AuditResult

    def build(folder: Path) -> None:
        shutil.copytree(FLOWERS, folder / "flowers")
        moved = move_to_wrong_class(folder / "flowers", 0.08, seed=0)
        (folder / "moved.json").write_text(json.dumps(moved))
        with own_cache(folder / "cache"):
            _audit(folder / "flowers", folder / "audit")

    folder = built_once("audit-mislabelled", build)
    merge_cache(folder / "cache", Path(os.environ["INCEPTUNE_CACHE"]))
    with open(folder / "audit" / "issues.csv", newline="") as f:  # the issues, in the order audit wrote them
        issues = [Issue(r["path"], r["issue"], float(r["score"]), "", suggested_label=r["suggested_label"],
                        duplicate_of=r["duplicate_of"]) for r in csv.DictReader(f)]
    record = json.loads((folder / "audit" / "audit.json").read_text())
    return folder / "flowers", json.loads((folder / "moved.json").read_text()), \
        AuditResult(folder / "audit", issues, record)


@requires_shared
@pytest.mark.slow
def test_audit_finds_photos_moved_to_a_wrong_class(mislabelled):
    root, moved, result = mislabelled
    flagged = {i.path: i.suggested_label for i in result.issues if i.issue == "label"}
    hits = [p for p in flagged if p in moved]
    recall, precision = len(hits) / len(moved), len(hits) / len(flagged)
    right = sum(flagged[p] == moved[p] for p in hits) / len(hits)
    print(f"label issues: {len(flagged)} flagged, recall {recall:.3f}, precision {precision:.3f}, "
          f"suggested right {right:.3f}")
    assert recall >= 0.8 and precision >= 0.6 and right >= 0.8
    assert result.record["counts"]["label"] == len(flagged)
    assert result.record["seconds"]["total"] > 0


def _split_folders_with_planted_copies(root: Path) -> list[tuple[str, str]]:
    """flowers5 as train/ (4 of 5 photos per class) and val/, with 30 near-duplicates of train photos: every
    third written into val/ (leakage across the given splits), the others beside their originals."""
    for class_dir in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        files = sorted(class_dir.iterdir())
        for k, f in enumerate(files):
            target = root / ("val" if k % 5 == 4 else "train") / class_dir.name / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, target)
    count = iter(range(10_000))

    def into(source: Path) -> Path:
        name = f"{source.stem}-near.jpg"
        return (root / "val" / source.parent.name / name) if next(count) % 3 == 0 else source.with_name(name)

    return plant_near_duplicates(root / "train", 30, seed=0, into=into)


@requires_shared
@pytest.mark.slow
def test_audit_finds_planted_near_duplicates_and_the_leakage_across_given_splits(mislabelled, tmp_path):  # the audit's features of flowers5: in the cache
    root = tmp_path / "flowers"
    pairs = _split_folders_with_planted_copies(root)
    result = _audit(root, tmp_path / "audit")
    keeper = {i.path: i.duplicate_of for i in result.issues if i.issue == "near_duplicate"}

    def cluster(path):
        return keeper.get(path, path)

    found = [a for a, b in pairs if cluster(a) == cluster(b)]
    print(f"near-duplicates: {len(found)} of {len(pairs)} planted pairs found; "
          f"{result.record['near_duplicates']}")
    assert len(found) / len(pairs) >= 0.95
    crossing = {(a, b) for a, b in pairs if "/val/" in b}
    leaked = {frozenset((p["a"], p["b"])) for leak in result.record["leakage"] if leak.get("kind") == "near_duplicate"
              for p in leak["pairs"]}
    caught = [pair for pair in crossing if frozenset(pair) in leaked]
    assert len(caught) >= 0.95 * len(crossing) and len(crossing) == 10
    assert all(set(leak["splits"]) == {"train", "val"} for leak in result.record["leakage"])


@requires_shared
@pytest.mark.slow
def test_train_keeps_every_near_duplicate_cluster_in_one_split(mislabelled, tmp_path):  # the audit's features of flowers5: in the cache
    root = tmp_path / "flowers"
    shutil.copytree(FLOWERS, root)
    pairs = plant_near_duplicates(root, 30, seed=1)
    run = inceptune.train(str(root), out=str(tmp_path / "run"), weights=str(SHARED_WEIGHTS), image_size=SIZE,
                          search="none", refit=False, epochs=1, fine_tune_epochs=0, tensorboard=False)
    with open(run.run / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    split = {r["path"]: r["split"] for r in rows}
    together = sum(split[a] == split[b] for a, b in pairs)
    print(f"planted pairs in one split: {together} of {len(pairs)}")
    assert together >= 0.95 * len(pairs)  # those found (recall >= 0.95) are clusters, and clusters stay whole:
    groups = {}
    for r in rows:
        if r["group"]:
            groups.setdefault(r["group"], set()).add(r["split"])
    assert len(groups) >= 30 and all(len(s) == 1 for s in groups.values())  # every cluster
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    summary = json.loads((run.run / "dataset.json").read_text())["near_duplicates"]
    assert summary["clusters"] == len(groups)


@requires_shared
@pytest.mark.slow
def test_fixes_chosen_on_audit_html_are_excluded_by_train(mislabelled, tmp_path):
    root, _, result = mislabelled
    with headless_chromium() as browser:
        page = browser.new_page(accept_downloads=True)
        page.goto((result.path / "audit.html").as_uri())
        decoded = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
        total = page.evaluate("document.images.length")
        boxes = page.locator("input.fix")
        boxes.nth(0).check()
        boxes.nth(1).check()
        with page.expect_download() as download:
            page.click("#download")
        fixes = tmp_path / "fixes.csv"
        download.value.save_as(fixes)
    assert total >= len(result.issues) and decoded == total  # every thumbnail decodes
    with open(fixes) as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == [i.path for i in result.issues[:2]]
    proc = run_cli("train", str(root), "--exclude", str(fixes), "--weights", str(SHARED_WEIGHTS), "--image-size",
                   str(SIZE), "--search", "none", "--no-refit", "--epochs", "1", "--fine-tune-epochs", "0",
                   "--no-tensorboard", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["exclude"] == str(fixes.resolve())
    dataset = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert dataset["fixes"]["exclude"]["paths"] == sorted(r["path"] for r in rows)
    with open(tmp_path / "run" / "manifest.csv") as f:
        assert not {r["path"] for r in rows} & {m["path"] for m in csv.DictReader(f)}


def test_outliers_are_far_from_their_class_and_from_every_class():
    from inceptune.audits.outliers import find_outliers

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 64))
    y = np.repeat(np.arange(3), 40)
    features = centres[y] + rng.normal(scale=0.3, size=(120, 64))
    features[[5, 60]] = rng.normal(size=(2, 64)) * 3  # two photos from elsewhere
    features[90] = centres[0] + rng.normal(scale=0.3, size=64)  # a class-0 look in class 2: a label issue
    found = find_outliers(features, y)
    assert set(np.flatnonzero(found.flagged)) == {5, 60}
    assert found.score[5] > np.percentile(found.score, 95) and found.own_class[90] > np.median(found.own_class)


@requires_shared
@pytest.mark.slow
def test_audit_flags_dark_small_and_near_constant_photos(mislabelled, tmp_path):  # the audit's features of flowers5: in the cache
    from PIL import Image, ImageEnhance

    root = tmp_path / "flowers"
    for name in ("daisy", "tulips"):
        for f in sorted((FLOWERS / name).iterdir())[:30]:
            (root / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, root / name / f.name)
    source = sorted((FLOWERS / "tulips").iterdir())[50]
    with Image.open(source) as img:
        img = img.convert("RGB")
        ImageEnhance.Brightness(img).enhance(0.08).save(root / "tulips" / "dark.jpg")
        img.resize((8, 6)).save(root / "tulips" / "small.jpg")  # tiny: CleanVision's rule, as shipped, is loose
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(root / "daisy" / "flat.png")
    result = _audit(root, tmp_path / "audit")
    found = {(Path(i.path).name, i.issue) for i in result.issues if i.issue not in ("near_duplicate", "label")}
    assert {("dark.jpg", "dark"), ("small.jpg", "small"), ("flat.png", "low_information")} <= found, found
    assert not {name for name, _ in found} - {"dark.jpg", "small.jpg", "flat.png"}, found  # nothing else
