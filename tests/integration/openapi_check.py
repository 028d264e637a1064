"""openapi_check.py - check a server answer against docs/server-openapi.yaml.

Our own small checker (no schemathesis, no jsonschema): find the route of
the file that matches METHOD and PATH (templated segments such as {id}
match one segment), the response of that STATUS, and validate the JSON
body against its schema (the OpenAPI 3.0 subset the file uses: $ref, type
with nullable, enum, required, properties, additionalProperties, items,
minimum/maximum, minLength, pattern, allOf/anyOf/oneOf/not). A 204 must
have no body; a status the route does not list is an error; a path
no route matches must be a 404 with the error shape. A response whose
content is not JSON (the status page: text/html, text/javascript, text/css)
takes the text as its body: a string that is not empty; media_types() says
which Content-Type it may have.

    from openapi_check import OpenAPI
    api = OpenAPI()                       # docs/server-openapi.yaml
    api.check("GET", "/v1/runs", 200, body)   # raises AssertionError

Command line: python openapi_check.py METHOD PATH STATUS [BODY_FILE|-]
"""
import json
import pathlib
import re
import sys

import yaml

DEFAULT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "server-openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


class OpenAPI:
    def __init__(self, path=DEFAULT):
        self.spec = yaml.safe_load(pathlib.Path(path).read_text())
        self.routes = []
        for template, item in self.spec["paths"].items():
            pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
            self.routes.append((template, re.compile(pattern), item))

    # ---- the file ----

    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise AssertionError(f"only local $ref: {ref}")
            node = self.spec
            for part in ref[2:].split("/"):
                node = node[part]
            seen += 1
            if seen > 20:
                raise AssertionError(f"$ref loop at {ref}")
        return node

    def route(self, path):
        path = path.split("?", 1)[0]
        for template, rx, item in self.routes:
            if rx.match(path):
                return template, item
        return None, None

    def operation(self, method, path):
        template, item = self.route(path)
        if item is None:
            raise AssertionError(f"{path}: no route of the OpenAPI file matches")
        op = item.get(method.lower())
        if op is None:
            return template, None
        return template, op

    def response_schema(self, method, path, status):
        template, op = self.operation(method, path)
        if op is None:
            if status == 405:
                return template, None, False
            raise AssertionError(f"{method} {template}: not in the OpenAPI file")
        responses = op.get("responses", {})
        resp = responses.get(str(status)) or responses.get("default")
        if resp is None:
            raise AssertionError(f"{method} {template}: status {status} is not among {sorted(responses)}")
        resp = self.resolve(resp)
        content = resp.get("content")
        if not content:
            return template, None, True
        media = content.get("application/json")
        if media is None:  # a text (a page): its body is that text
            return template, {"type": "string", "minLength": 1}, False
        return template, media.get("schema", {}), False

    def media_types(self, method, path, status):
        """The Content-Types (without parameters) the file gives METHOD PATH's STATUS answer."""
        template, op = self.operation(method, path)
        if op is None:
            return ["application/json"] if status == 405 else []
        responses = op.get("responses", {})
        resp = self.resolve(responses.get(str(status)) or responses.get("default") or {})
        return sorted(resp.get("content", {}))

    # ---- the check ----

    def check(self, method, path, status, body):
        """Raise AssertionError unless (status, body) is what the file says METHOD PATH answers."""
        if self.route(path)[1] is None and status == 404:  # no such path: the error shape
            template, schema, empty = path, {"$ref": "#/components/schemas/Error"}, False
        else:
            template, schema, empty = self.response_schema(method, path, status)
        where = f"{method} {template} {status}"
        if empty:
            if body not in (None, "", b""):
                raise AssertionError(f"{where}: expected no body, got {body!r}")
            return
        if schema is None:  # a 405 on a path with no such method: the error shape
            schema = {"$ref": "#/components/schemas/Error"}
        errors = []
        self.validate(body, schema, "$", errors)
        if errors:
            raise AssertionError(f"{where}: " + "; ".join(errors[:10]))

    def validate(self, value, schema, at, errors):
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return
        if value is None:
            if schema.get("nullable"):
                return
            if "type" in schema:
                errors.append(f"{at}: null is not allowed")
                return
        for sub in schema.get("allOf", []):
            self.validate(value, sub, at, errors)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                matches = 0
                for sub in schema[key]:
                    sub_errors = []
                    self.validate(value, sub, at, sub_errors)
                    matches += not sub_errors
                if matches == 0 or (key == "oneOf" and matches > 1):
                    errors.append(f"{at}: {key}: {matches} of {len(schema[key])} alternatives match")
        if "not" in schema:
            sub_errors = []
            self.validate(value, schema["not"], at, sub_errors)
            if not sub_errors:
                errors.append(f"{at}: matches a schema it must not")
        t = schema.get("type")
        if t is not None and not _is_type(value, t):
            errors.append(f"{at}: {json.dumps(value)[:60]} is not of type {t}")
            return
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{at}: {value!r} is not one of {schema['enum']}")
        if isinstance(value, str):
            if len(value) < schema.get("minLength", 0):
                errors.append(f"{at}: shorter than {schema['minLength']}")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                errors.append(f"{at}: {value!r} does not match {schema['pattern']}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                errors.append(f"{at}: {value} is below {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                errors.append(f"{at}: {value} is above {schema['maximum']}")
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                self.validate(item, schema["items"], f"{at}[{i}]", errors)
        if isinstance(value, dict):
            for name in schema.get("required", []):
                if name not in value:
                    errors.append(f"{at}: required {name!r} is missing")
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            for name, v in value.items():
                if name in props:
                    self.validate(v, props[name], f"{at}.{name}", errors)
                elif extra is False:
                    errors.append(f"{at}: {name!r} is not allowed")
                elif isinstance(extra, dict):
                    self.validate(v, extra, f"{at}.{name}", errors)


def _is_type(value, t):
    if isinstance(t, list):
        return any(_is_type(value, x) for x in t)
    return {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)
        or isinstance(v, float) and v.is_integer(),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    }.get(t, lambda v: True)(value)


def main(argv):
    if len(argv) < 4:
        print(__doc__.split("\n\n")[-1].strip(), file=sys.stderr)
        return 2
    method, path, status = argv[1], argv[2], int(argv[3])
    text = ""
    if len(argv) > 4:
        text = sys.stdin.read() if argv[4] == "-" else pathlib.Path(argv[4]).read_text()
    body = json.loads(text) if text.strip() else None
    try:
        OpenAPI().check(method, path, status, body)
    except AssertionError as e:
        print(f"openapi_check: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
