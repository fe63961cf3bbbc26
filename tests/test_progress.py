"""Progress lines: written only inside a report run, shown on its terminal live, kept one per finished step elsewhere."""

from __future__ import annotations

import io
import os

from fer_helpers.core import paths, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_is_written_outside_a_report_run(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.PROGRESS_ENV, raising=False)
    progress.report("epoch 1/3", done=True)
    assert list(tmp_path.iterdir()) == []


def test_a_log_keeps_the_finished_steps_only_each_on_its_line(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.PROGRESS_ENV, raising=False)
    shown = io.StringIO()
    with progress.follow(tmp_path / "progress.log", shown, prefix="[3/8] 03_baseline ", interval=0.01):
        assert os.environ[paths.PROGRESS_ENV] == str(tmp_path / "progress.log")
        progress.report("baseline epoch 1/2: 50% of the epoch")
        progress.report("baseline epoch 1/2: loss 1.5,\n PublicTest accuracy 40.0%", done=True)
        progress.report("baseline epoch 2/2: loss 1.2", done=True)
    assert paths.PROGRESS_ENV not in os.environ
    assert shown.getvalue() == (
        "[3/8] 03_baseline baseline epoch 1/2: loss 1.5, PublicTest accuracy 40.0%\n"
        "[3/8] 03_baseline baseline epoch 2/2: loss 1.2\n"
    )


def test_a_terminal_redraws_the_live_line_in_place(tmp_path):
    shown = Terminal()
    with progress.follow(tmp_path / "progress.log", shown, interval=0.01):
        progress.report("epoch 1/2: 50% of the epoch")
        progress.report("epoch 1/2: done", done=True)
        progress.report("epoch 2/2: 5%")
    text = shown.getvalue()
    assert text.startswith("\repoch 1/2: 50% of the epoch\repoch 1/2: done" + " " * 12 + "\n")  # blanks the rest
    assert text.endswith("\r" + " " * len("epoch 2/2: 5%") + "\r")  # the live line is cleared at the end
    assert text.count("\n") == 1


def test_a_line_whose_end_is_not_written_yet_waits_for_it(tmp_path):
    shown = io.StringIO()
    log = tmp_path / "progress.log"
    with progress.follow(log, shown, interval=0.01):
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{progress.DONE}\tepoch 1")
            out.flush()
            progress.time.sleep(0.05)
            assert shown.getvalue() == ""
            out.write("/2\n")
    assert shown.getvalue() == "epoch 1/2\n"


def test_a_quiet_terminal_shows_the_time_so_far(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.0)
    shown = Terminal()
    with progress.follow(tmp_path / "progress.log", shown, prefix="[1/8] 01 ", interval=0.01):
        progress.time.sleep(0.05)
    assert "\r[1/8] 01 running for 0 s" in shown.getvalue()
