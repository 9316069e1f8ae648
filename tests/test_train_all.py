"""utils.zoo.train_all: every model of the zoo is scheduled, longest first, each into its own folder."""

from pathlib import Path

from utils.zoo import train_all


def test_every_course_model_is_trained():
    from tests.test_model_acceptance import COURSE_MODELS

    assert set(COURSE_MODELS) | {"jw-classifiers"} == set(train_all.recipe_names())


def test_each_model_trains_into_its_own_folder_on_the_command_line(tmp_path: Path):
    for name in train_all.recipe_names():
        cmd = train_all.command(name, tmp_path, smoke=True)
        assert cmd[cmd.index("--out") + 1] == str(tmp_path / name) and cmd[-1] == "--smoke"
        assert (name in cmd) != (name == "jw-classifiers")  # the classifiers have their own module


def test_longest_recipes_start_first(tmp_path: Path, monkeypatch):
    started = []
    monkeypatch.setattr(train_all, "train_one", lambda name, out, smoke: started.append(name) or
                        {"model": name, "wall_seconds": 0.0, "exit_code": 0})
    record = train_all.train_all(tmp_path, jobs=1)
    seconds = [train_all.shipped_cpu_seconds(name) for name in started]
    assert seconds == sorted(seconds, reverse=True) and seconds[0] > 1000  # ioi-lm / course-lm, not a pointer
    assert [run["model"] for run in record["models"]] == started
    assert (tmp_path / "zoo_timing.json").exists()


def test_the_timing_record_says_which_machine_and_the_card_quotes_it(tmp_path: Path, monkeypatch):
    import json

    import torch

    from utils.zoo import model_card

    monkeypatch.setattr(train_all, "train_one", lambda name, out, smoke: {"model": name, "wall_seconds": 90.0,
                                                                          "exit_code": 0})
    record = train_all.train_all(tmp_path / "zoo", jobs=2)
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and record["cpu_count"] >= 1
    assert len(record["date"]) == 10 and record["jobs"] == 2
    monkeypatch.setattr(model_card, "MODELS_DIR", tmp_path)
    assert model_card.zoo_timing_lines() == []  # no timing copied into the models folder: no line
    (tmp_path / "zoo_timing.json").write_text(json.dumps({**record, "wall_seconds": 2622.4}))
    line = model_card.zoo_timing_lines()[0]
    assert "**43.7 minutes**" in line and f"{record['cpu_capability']}, {record['date']}" in line
    assert all(f"{name} 1.5" in line for name in train_all.recipe_names())  # 90 s each


def test_the_committed_zoo_record_trains_every_model_in_under_90_minutes_on_2_cores():
    """Issue 11's budget, read from the committed end-to-end run (models/zoo_timing.json, written by train_all; no
    timing is measured here): every current recipe trained, none failed, on two cores, in under 90 minutes."""
    import json

    from utils.models import MODELS_DIR

    record = json.loads((MODELS_DIR / "zoo_timing.json").read_text())
    assert not record["smoke"] and record["cpu_count"] == 2 and record["jobs"] <= 2, record
    assert sorted(run["model"] for run in record["models"]) == sorted(train_all.recipe_names())
    assert all(run["exit_code"] == 0 for run in record["models"]), record["models"]
    assert record["wall_seconds"] < 90 * 60, record["wall_seconds"]


def test_the_committed_weights_weigh_under_40_mb_in_all():
    from utils.models import MODELS_DIR

    weights = list(MODELS_DIR.rglob("*.safetensors")) + list(MODELS_DIR.rglob("*.bin"))
    assert len(weights) > 8 and sum(path.stat().st_size for path in weights) < 40 * 10**6
