from app import app


def test_hello():
    assert app.test_client().get("/").data == b"hello from flask-app"
