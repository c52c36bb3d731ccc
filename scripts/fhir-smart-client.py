#!/usr/bin/env python3
"""A hospital's FHIR application against a dualchain node, as it would run unchanged
against any SMART-enabled FHIR R4 server: SMART on FHIR's stock Python client
(`fhirclient`), authenticated by SMART Backend Services (an ES384 or RS384 client
assertion signed with PyJWT).

    scripts/fhir-smart-client.py keygen --alg ES384 --kid K --key KEY.pem --jwks JWKS.json
    scripts/fhir-smart-client.py assertion --client-id ID --key KEY.pem --kid K --aud TOKEN_URL
    scripts/fhir-smart-client.py flow --base https://HOST:PORT/fhir --ca CA.der \\
        --client-id ID --key KEY.pem --kid K [--bundle B.json] [--observation O.json] \\
        [--search QUERY]... [--out DIR]

`keygen` makes the client's key pair: the private key (PEM, mode 0600) stays with the
client; the public JWK Set is what the institution registers at its node
(`dualchain client smart-add ID --jwks JWKS.json --scope "..."`).

`assertion` prints one signed client assertion (for a client written in another language,
or a test of the token endpoint's refusals).

`flow` does what an integration engine does, in order: SMART discovery
(`.well-known/smart-configuration`), the stock client's start (`GET metadata`, which
names the token endpoint), the token (client_credentials, private_key_jwt), then with the
bearer token: a transaction Bundle, single Observations, and searches, following the
`next` links page by page. It prints one JSON object (what was granted, each answer's
status, each search's results) and, with --out, writes every FHIR answer there to be
validated (scripts/fhir-validate.py). Exit status 0 when every step succeeded.

`scripts/setup.sh` installs fhirclient and PyJWT into ~/.cache/dualchain-py
(DUALCHAIN_PY_DIR); this script puts that directory on its path.
"""

import argparse
import json
import os
import ssl
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.environ.get("DUALCHAIN_PY_DIR", os.path.expanduser("~/.cache/dualchain-py")))

try:
    import jwt
    import requests
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from fhirclient import client
    from fhirclient.models import fhirsearch, observation
except ImportError as e:  # a missing library is a failure, never a pass
    sys.exit(f"fhirclient or PyJWT is not installed ({e}): run scripts/setup.sh")


def keygen(args):
    if args.alg == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": args.kid, "alg": args.alg, "use": "sig"})
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(args.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    with open(args.jwks, "w", encoding="utf-8") as f:
        json.dump({"keys": [jwk]}, f, indent=2)


def assertion(client_id, key_pem, kid, token_url):
    """The RFC 7523 client assertion SMART Backend Services asks for."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    alg = "ES384" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS384"
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def flow(args):
    out = {}
    base = args.base.rstrip("/")
    with open(args.ca, "rb") as f:
        pem = ssl.DER_cert_to_PEM_cert(f.read())
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(pem)
    os.environ["REQUESTS_CA_BUNDLE"] = f.name

    def save(name, data):
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)

    # SMART discovery: where the token endpoint is (and that it takes private_key_jwt).
    config = requests.get(f"{base}/.well-known/smart-configuration", timeout=30).json()
    if "private_key_jwt" not in config.get("token_endpoint_auth_methods_supported", []):
        raise SystemExit(f"the node does not take private_key_jwt: {config}")
    token_url = config["token_endpoint"]
    with open(args.key, "rb") as f:
        key_pem = f.read()

    # The stock client: metadata, then the token, as fhirclient does them.
    smart = client.FHIRClient(
        settings={
            "app_id": args.client_id,
            "api_base": base + "/",
            "scope": args.scope,
            "jwt_token": assertion(args.client_id, key_pem, args.kid, token_url),
        }
    )
    smart.wants_patient = False
    smart.prepare()
    statement = smart.server.capabilityStatement
    save("metadata", statement.as_json())
    if smart.server.auth._token_uri != token_url:
        raise SystemExit(f"metadata names {smart.server.auth._token_uri}, discovery {token_url}")
    smart.authorize()
    out["granted"] = smart.launch_context.get("scope")
    out["token_type"] = smart.launch_context.get("token_type")

    def post(path, resource, name):
        r = smart.server.post_json(path, resource)
        body = r.json() if r.content else None
        save(name, body)
        return {"status": r.status_code, "location": r.headers.get("Location"), "body": body}

    if args.bundle:
        with open(args.bundle, encoding="utf-8") as f:
            out["transaction"] = post("", json.load(f), "transaction-response")
    out["observations"] = []
    for i, path in enumerate(args.observation or []):
        with open(path, encoding="utf-8") as f:
            out["observations"].append(post("Observation", json.load(f), f"observation-{i}"))

    # Searches through the stock client's search API, page by page (it follows `next`).
    out["searches"] = []
    for i, query in enumerate(args.search or []):
        struct = dict(p.split("=", 1) for p in query.split("&"))
        search = fhirsearch.FHIRSearch(observation.Observation, struct)
        pages, found = 0, []
        for bundle in search.perform_iter(smart.server):
            save(f"search-{i}-page-{pages}", bundle.as_json())
            pages += 1
            found += [e.resource.id or "" for e in bundle.entry or [] if e.search and e.search.mode == "match"]
        out["searches"].append({"query": query, "pages": pages, "total": bundle.total, "found": found})
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("--alg", choices=["ES384", "RS384"], default="ES384")
    k.add_argument("--kid", required=True)
    k.add_argument("--key", required=True)
    k.add_argument("--jwks", required=True)
    f = sub.add_parser("flow")
    f.add_argument("--base", required=True, help="the node's FHIR base, https://HOST:PORT/fhir")
    f.add_argument("--ca", required=True, help="the consortium's TLS CA certificate (DER)")
    f.add_argument("--client-id", required=True)
    f.add_argument("--key", required=True)
    f.add_argument("--kid", required=True)
    f.add_argument("--scope", default="system/Observation.write system/Observation.read system/Patient.write")
    f.add_argument("--bundle")
    f.add_argument("--observation", action="append")
    f.add_argument("--search", action="append")
    f.add_argument("--out")
    a = sub.add_parser("assertion")
    a.add_argument("--client-id", required=True)
    a.add_argument("--key", required=True)
    a.add_argument("--kid", required=True)
    a.add_argument("--aud", required=True, help="the token endpoint's URL")
    args = parser.parse_args()
    if args.command == "keygen":
        keygen(args)
    elif args.command == "assertion":
        with open(args.key, "rb") as f:
            print(assertion(args.client_id, f.read(), args.kid, args.aud))
    else:
        flow(args)


if __name__ == "__main__":
    main()
