"""A live dashboard in the browser for a folder of runs (``cnnlab dashboard RUNS_DIR``).

Modules, one concept each (Starlette and uvicorn are imported only here, from the
``dashboard`` extra):

- ``data``: finding and reading run folders safely (no path leaves RUNS_DIR; partial files
  are "not there yet");
- ``models``: a run's latest weights at work: predictions of uploads (as ``cnnlab predict``),
  Grad-CAM, feature maps;
- ``app``: the Starlette routes, JSON API and server-sent-event stream;
- ``server``: uvicorn in the foreground or in a thread beside ``cnnlab train --dashboard``;
- ``static/``: the page (HTML, CSS, plain JS; nothing loaded from the network).
"""
