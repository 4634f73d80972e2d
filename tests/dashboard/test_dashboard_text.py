"""The dashboard on a text run (issue 27): the try-it box posts text and gets the numbers of
`cnnlab predict RUN "text"` and the words that decided (Starlette's TestClient)."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import cnnlab.cli.train_cmd as train_cmd
from cnnlab.cli.main import main
from cnnlab.cli.text_cmds import load_text_model, probabilities
from cnnlab.explain.text_cam import text_grad_cam
from text_data import reviews, train_text

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("text_dashboard")
    runs = tmp / "runs"
    train_text(reviews(tmp / "reviews"), runs / "reviews", 4, "--no-plots")
    return runs


@pytest.fixture(scope="module")
def client(root: Path):
    from starlette.testclient import TestClient

    from cnnlab.dashboard.app import create_app

    return TestClient(create_app(root))


def post(client, text: str | bytes, run: str = "reviews", top_k: int = 2):
    body = text.encode("utf-8") if isinstance(text, str) else text
    return client.post(
        f"/api/predict?run={run}&top_k={top_k}", content=body, headers={"Content-Type": "text/plain"}
    )


def test_predict_agrees_with_cnnlab_predict(client, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "What a lovely, wonderful film!"
    response = post(client, text)
    assert response.status_code == 200, response.text
    body = response.json()
    model, extra, encoder = load_text_model(str(root / "reviews"))
    expected = probabilities(model, encoder, [text])[0]  # what `cnnlab predict` computes
    np.testing.assert_array_equal(body["probabilities"], expected)
    assert [t["class"] for t in body["top"]] == [extra["classes"][i] for i in np.argsort(-expected)[:2]]
    assert main(["predict", str(root / "reviews"), text, "--top-k", "2"]) == 0
    printed = capsys.readouterr().out
    for t in body["top"]:  # the CLI's printed numbers, to its 3 decimals
        assert f"{t['class']} {t['probability']:.3f}" in printed
    # The words that decided: show --cam's Grad-CAM of the top class, over the text's tokens.
    assert body["tokens"] == ["what", "a", "lovely", ",", "wonderful", "film", "!"]
    ids, lengths = encoder.encode([text])
    cam = text_grad_cam(model, ids, body["top"][0]["index"], int(lengths[0]))
    np.testing.assert_allclose(body["weights"], cam, atol=1e-4)
    assert body["deciding"][0]["weight"] == 1.0 and len(body["deciding"]) == 5
    assert body["text"] is True and body["source"] == "model.npz" and body["cut"] == 0


def test_unknown_and_cut_tokens_are_reported(client) -> None:
    body = post(client, "zyzzyva " + "good " * 300).json()
    assert body["unknown"][:2] == [True, False]
    assert body["cut"] == 301 - len(body["tokens"]) > 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "the request body must be the text to classify (UTF-8); it was empty"),
        (b"   \n", 400, "the text is empty: type a sentence to classify"),
        (b"caf\xe9 good", 400, "the text must be UTF-8: byte 0xe9 at offset 3 is not valid"),
        (b"x" * (64 * 1024 + 1), 413, "upload too large: at most 65536 bytes"),
    ],
)
def test_bad_texts_are_refused_by_name(client, body: bytes, status: int, message: str) -> None:
    response = post(client, body)
    assert response.status_code == status and message in response.json()["error"]


def test_a_text_run_without_model_npz_says_when_it_can_be_tried(client, root: Path) -> None:
    run = root / "training"
    shutil.copytree(root / "reviews", run)
    (run / "model.npz").unlink()
    response = post(client, "good film", run="training")
    assert response.status_code == 409
    assert re.search(
        r"training: a text run can be tried once its model.npz is written", response.json()["error"]
    )
    shutil.rmtree(run)


def test_the_page_has_the_text_box_and_the_run_lists_vocab_json(client) -> None:
    page = client.get("/").text
    assert 'id="text-input"' in page and 'id="try-text" hidden' in page
    script = client.get("/static/app.js").text
    assert 'details.files.includes("vocab.json")' in script and '"text/plain; charset=utf-8"' in script
    assert "vocab.json" in client.get("/api/run?name=reviews").json()["files"]


def test_the_text_box_in_a_real_browser(root: Path) -> None:
    """Chromium (skipped without it, as the other browser tests): type, classify, see the words."""
    from dashboard_helpers import IN_CI

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not Path(chromium).exists():
        if IN_CI:
            pytest.fail("chromium and playwright are needed in CI")
        pytest.skip("chromium or playwright is not installed")
    from cnnlab.dashboard.server import BackgroundServer

    server = BackgroundServer(root, port=0).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url + "#run=reviews")
            page.wait_for_selector("#try-text:not([hidden])", timeout=20_000)
            assert page.locator("#try-image").is_hidden() and page.locator("#features-form").is_hidden()
            page.fill("#text-input", "a great and lovely story")
            page.click("#text-send")
            page.wait_for_function("() => window.cnnlab.answers === 1", timeout=20_000)
            shown = page.evaluate("window.cnnlab.lastPrediction")
            assert page.locator("#top1").get_attribute("data-class") == shown["top"][0]["class"]
            spans = page.locator("#text-words span.tok")
            assert spans.count() == 5 and spans.nth(0).inner_text() == "a"
            strongest = shown["weights"].index(1.0)
            color = spans.nth(strongest).evaluate("s => getComputedStyle(s).backgroundColor")
            assert color == "rgba(220, 40, 20, 0.85)"  # set through CSSOM: the CSP allows it
            assert errors == []
            browser.close()
    finally:
        server.stop()


def test_train_with_dashboard_serves_the_text_run(tmp_path: Path, monkeypatch, capsys) -> None:
    """`cnnlab train --data text:... --dashboard`: the page's URL first, then (training done)
    the try-it box answers with the run's model while the server keeps serving."""
    answers: list[dict] = []

    def keep_serving(server) -> None:  # instead of waiting for Ctrl-C: one request, then stop
        request = urllib.request.Request(
            server.url + "api/predict?run=watched&top_k=2", data=b"a lovely film", method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answers.append(json.loads(response.read()))
        server.stop()

    monkeypatch.setattr(train_cmd, "keep_serving", keep_serving)  # the step text runs share
    data = reviews(tmp_path / "reviews", per_class=8)
    train_text(data, tmp_path / "runs" / "watched", 1, "--dashboard", "--no-plots")
    assert re.search(r"^dashboard: http://127\.0\.0\.1:\d+/#run=watched$", capsys.readouterr().out, re.M)
    assert len(answers) == 1 and answers[0]["tokens"] == ["a", "lovely", "film"]
    assert answers[0]["source"] == "model.npz" and len(answers[0]["top"]) == 2
