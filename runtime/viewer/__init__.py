"""The browser viewer: both people of a live session in a web page (three.js bodies, 2D faces from the blendshapes).

    python -m runtime.viewer                    # the demo conversation -> open http://127.0.0.1:8030/
    python -m runtime.viewer --wav A.wav B.wav  # any mic_demo arguments pass through (--server HOST:PORT, ...)
    python -m runtime.viewer.screenshot --out docs/viewer.png   # headless Chromium, the page mid-conversation

The server is ``runtime.sinks.browser.BrowserSink`` (``mic_demo --browser [HOST:]PORT`` adds it to any session);
the page is ``static/index.html`` + ``static/viewer.js`` with three.js vendored in ``static/vendor/``.
"""

DEFAULT_ADDRESS = "127.0.0.1:8030"
DEFAULT_WAIT_S = 60.0  # s the viewer waits for a page to connect before the audio starts
