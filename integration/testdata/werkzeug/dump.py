"""The Werkzeug application of the pass-mode integration tests, as a Flask
app parses an upload form (Flask's request.form is Werkzeug's). It answers
every POST with what Werkzeug made of the form:

    {"form": {"<name>": ["<value>", ...]}, "order": ["<name>", ...], "files": ["<field>", ...]}

(form keeps every value of a repeated field, as request.form.getlist does;
order is the fields in form order) and GET with a line of text (the
harness's readiness probe). A path ending in /reject answers 422 (the
gateway then rolls the upload back).

    python3 dump.py PORT      # Debian: python3-werkzeug
"""

import json
import sys

from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response


@Request.application
def app(request):
    if request.method != "POST":
        return Response("werkzeug test app\n", mimetype="text/plain")
    body = {
        "form": request.form.to_dict(flat=False),
        "order": [k for k, _ in request.form.items(multi=True)],
        "files": list(request.files.keys()),
    }
    status = 422 if request.path.endswith("/reject") else 200
    return Response(json.dumps(body), status=status, mimetype="application/json")


if __name__ == "__main__":
    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
