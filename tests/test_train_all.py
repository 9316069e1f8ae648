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
