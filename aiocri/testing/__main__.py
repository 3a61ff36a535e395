"""``python -m aiocri.testing --socket PATH ...``: serve a fake CRI runtime."""

from aiocri.testing.fake_runtime import main

raise SystemExit(main())
