"""``python -m fastllm.cli`` is ``fastllm``."""

from fastllm.cli import main

raise SystemExit(main())
