"""The ``fashionrec`` command on a published run: JSON output, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess

import polars as pl
import pytest

from app.cli import main
from fashionrec.core import schemas as S
from fashionrec.tables.publish import read_table
from tests.support import child_env, python


def test_cli_similar_and_recommend_json(published_data, capsys):
    data_dir = published_data
    items = read_table(data_dir, S.ITEMS_TABLE)
    top = items.filter(pl.col("category") == "tops")["item_id"][0]
    bottom = items.filter(pl.col("category") == "bottoms")["item_id"][0]
    capsys.readouterr()
    assert main(["similar", top, "-k", "3", "--data", str(data_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in out["similar"]] == [1, 2, 3]
    assert main(["recommend", top, bottom, "-k", "4", "--data", str(data_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["suggestions"]) == 4
    assert {s["category"] for s in out["suggestions"]} <= {"shoes", "bags"}
    scores = [s["score"] for s in out["suggestions"]]
    assert scores == sorted(scores, reverse=True)
    assert main(["similar", "no-such-item", "--data", str(data_dir)]) == 2
    assert "unknown item id(s): no-such-item" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["similar", "ITEM", "-k", "0"], "k must be a positive integer (the number of items to return), not 0"),
    (["recommend", "ITEM", "-k", "-2"], "k must be a positive integer"),
    (["refresh", "--catalog", "x", "-k", "0"], "TopKConfig.k must be >= 1, not 0"),
    (["train", "--catalog", "x", "--epochs", "0"], "TrainConfig.epochs must be >= 1, not 0"),
])
def test_bad_values_end_in_one_line_and_no_traceback(published_data, args, message, tmp_path):
    item = read_table(published_data, S.ITEMS_TABLE)[S.ITEM_ID][0]
    args = [item if a == "ITEM" else a for a in args] + ["--data", str(published_data)]
    done = subprocess.run([python(), "-m", "app.cli", *args], env=child_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"fashionrec: error: {message}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_every_command_takes_an_s3_data_dir_as_a_url():
    from app.cli import build_parser

    parser = build_parser()
    for argv in (["similar", "i"], ["recommend", "i"], ["gallery"], ["models"], ["evaluate", "--catalog", "c"],
                 ["evaluate-similar", "--catalog", "c", "--label-column", "x"], ["refresh", "--catalog", "c"],
                 ["train", "--catalog", "c"]):
        args = parser.parse_args([*argv, "--data", "s3://bucket/recs"])
        assert args.data == "s3://bucket/recs", argv  # a Path would have made it s3:/bucket/recs
