#!/usr/bin/env python3
"""Validates FHIR R4 answers with a maintained FHIR library: the models of `fhirclient`,
SMART on FHIR's Python client (R4 4.0.1; strict: an element R4 does not define, a missing
required element, a value of the wrong type or a malformed date is an error, nested
resources included).

    scripts/fhir-validate.py FILE.json...
    scripts/fhir-validate.py --metadata https://HOST:PORT/fhir --ca CA.der FILE.json...

With --metadata, the stock client (`fhirclient.client.FHIRClient`) also starts against the
node, as an application would: it reads `GET <base>/metadata` and parses the
CapabilityStatement (trusting the consortium's TLS CA, given as DER).

`scripts/setup.sh` installs fhirclient into ~/.cache/dualchain-py (DUALCHAIN_PY_DIR);
this script puts that directory on its path. Exit status 0 when every file validates.
"""

import argparse
import json
import os
import ssl
import sys
import tempfile

sys.path.insert(0, os.environ.get("DUALCHAIN_PY_DIR", os.path.expanduser("~/.cache/dualchain-py")))

try:
    from fhirclient.models import fhirelementfactory
except ImportError as e:  # a missing library is a failure, never a pass
    sys.exit(f"fhirclient is not installed ({e}): run scripts/setup.sh")


def validate(path):
    """None if the file is a valid FHIR R4 resource, else why not."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        return f"not JSON: {e}"
    kind = data.get("resourceType") if isinstance(data, dict) else None
    if not kind:
        return "no resourceType"
    try:
        resource = fhirelementfactory.FHIRElementFactory.instantiate(kind, data)
    except Exception as e:  # fhirclient raises FHIRValidationError and friends
        return str(e)
    if type(resource).__name__ != kind:
        return f"{kind} is not an R4 resource type"
    return None


def start_client(base, ca_der):
    """The stock client's first step: the CapabilityStatement of `base`."""
    with open(ca_der, "rb") as f:
        pem = ssl.DER_cert_to_PEM_cert(f.read())
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(pem)
    os.environ["REQUESTS_CA_BUNDLE"] = f.name
    from fhirclient import client

    smart = client.FHIRClient(settings={"app_id": "dualchain-check", "api_base": base.rstrip("/") + "/"})
    smart.prepare()
    statement = smart.server.capabilityStatement
    if statement is None:
        raise RuntimeError("no CapabilityStatement")
    kinds = [r.type for r in (statement.rest[0].resource or [])] if statement.rest else []
    return statement.fhirVersion, kinds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*")
    parser.add_argument("--metadata", help="a node's FHIR base to start the stock client against")
    parser.add_argument("--ca", help="the consortium's TLS CA certificate (DER)")
    args = parser.parse_args()
    failed = 0
    for path in args.files:
        why = validate(path)
        if why is None:
            print(f"ok       {path}")
        else:
            failed += 1
            print(f"INVALID  {path}: {why}")
    if args.metadata:
        try:
            version, kinds = start_client(args.metadata, args.ca)
            print(f"client   {args.metadata}: FHIR {version}, resources {kinds}")
        except Exception as e:
            failed += 1
            print(f"CLIENT   {args.metadata}: {e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
