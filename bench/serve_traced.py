"""``confide serve`` with tracemalloc: where the Python heap of idle connections goes, by line.

Same app and uvicorn settings as ``confide serve`` (``confide.cli.runtime.run_server``), plus:

* ``SIGUSR2``: take the baseline snapshot (done automatically once the server listens);
* ``SIGUSR1``: write the growth since the baseline, grouped by file:line (top 60) and by file,
  to ``--out`` (default ``tracemalloc.txt`` in the working directory).

Used by ``idle_connections.py --traced``. tracemalloc itself costs memory and CPU: use these
figures for *where*, and the untraced runs for *how much*.

    .venv/bin/python bench/serve_traced.py --port 8000 --database-url sqlite:///x.db
"""

from __future__ import annotations

import argparse
import signal
import tracemalloc
from pathlib import Path
from typing import Any


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--database-url", required=True)
    p.add_argument("--frames", type=int, default=4, help="traceback depth kept per allocation")
    p.add_argument("--out", default="tracemalloc.txt")
    a = p.parse_args()

    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    from confide.cli.runtime import migrate_db
    from confide.settings import Settings

    migrate_db(a.database_url)
    tracemalloc.start(a.frames)
    state: dict[str, Any] = {"base": tracemalloc.take_snapshot()}

    def baseline(*_: Any) -> None:
        state["base"] = tracemalloc.take_snapshot()

    def dump(*_: Any) -> None:
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        lines = []
        for key in ("lineno", "filename"):
            stats = snap.compare_to(state["base"], key)
            total = sum(s.size_diff for s in stats)
            lines.append(f"## growth by {key}: total {total / 1e6:.1f} MB\n")
            for s in stats[:60]:
                if s.size_diff <= 0:
                    continue
                frame = s.traceback[0]
                lines.append(
                    f"{s.size_diff / 1e3:10.1f} KB {s.count_diff:+8d} blocks  "
                    f"{frame.filename}:{frame.lineno}"
                )
            lines.append("")
        if a.frames > 1:  # the allocation paths of the top 15
            lines.append("## top 15 by traceback\n")
            for s in snap.compare_to(state["base"], "traceback")[:15]:
                lines.append(f"{s.size_diff / 1e3:10.1f} KB {s.count_diff:+8d} blocks")
                for fr in s.traceback:
                    lines.append(f"      {fr.filename}:{fr.lineno}")
        tmp = Path(a.out + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.rename(a.out)

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, baseline)

    import uvicorn

    from confide.web.app import create_app

    uvicorn.run(
        create_app(Settings(database_url=a.database_url)),
        host=a.host,
        port=a.port,
        log_config=None,
        ws_per_message_deflate=False,
        ws_max_size=64 * 1024,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
