"""A host process for the tests: starts the engine from argv[1] (JSON), prints its status,
then answers ``status`` lines on stdin and exits normally on ``exit`` (or end of input)
without calling shutdown: the binding's exit hook gives the seat back.

Flags: ``--sigterm-exits`` turns SIGTERM into a normal exit; ``--keep-at-exit`` starts
the engine with ``release_at_exit=False``."""

import json
import signal
import sys

import lic4es

config = json.loads(sys.argv[1])
if "--sigterm-exits" in sys.argv:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
lic4es.init(config, release_at_exit="--keep-at-exit" not in sys.argv)
print(json.dumps(lic4es.status()), flush=True)
for line in sys.stdin:
    if line.strip() == "status":
        print(json.dumps(lic4es.status()), flush=True)
    elif line.strip() == "exit":
        break
