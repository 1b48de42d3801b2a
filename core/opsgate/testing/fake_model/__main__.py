"""`python -m opsgate.testing.fake_model --port 8400 [--shell CMD] [--final TEXT] …`"""

from __future__ import annotations

import argparse
import logging
import sys

from opsgate.testing.fake_model.server import DEFAULT_SCRIPT, FakeModelServer, final, shell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opsgate.testing.fake_model",
                                     description="Scripted fake model server (Anthropic, Responses, Chat).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8400, help="0 picks a free port")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--shell", action="append", default=[], metavar="CMD",
                        help="a shell step (repeatable, played in order)")
    parser.add_argument("--final", default=None, metavar="TEXT", help="the final answer")
    parser.add_argument("--fail-status", type=int, default=None, help="answer every model call with this status")
    parser.add_argument("--fail-times", type=int, default=None, help="only fail the first N model calls")
    parser.add_argument("--stall-before", type=float, default=0.0)
    parser.add_argument("--stall-during", type=float, default=0.0)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if args.shell or args.final is not None:
        script = [shell(cmd) for cmd in args.shell] + [final(args.final if args.final is not None else "Done.")]
    else:
        script = list(DEFAULT_SCRIPT)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    server = FakeModelServer(script, model=args.model, fail_status=args.fail_status, fail_times=args.fail_times,
                             stall_before=args.stall_before, stall_during=args.stall_during,
                             host=args.host, port=args.port)
    server.start()
    logging.getLogger("opsgate.testing.fake_model").info("fake model server on %s", server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
