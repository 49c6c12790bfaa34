#!/usr/bin/env python3
"""Puts the pipeline's source object in place after the central stack is deployed.

CodePipeline requires a source stage; the central pipeline's reads a fixed object of the
pipeline bucket (output PipelineSourceObject) and never polls it. This uploads that object
once, a small zip saying what it is, unless it is already there. Run by make deploy-central
with the SAM CLI's virtualenv (which has boto3), with the stack, region and profile of the
given samconfig environment.

usage: pipeline_source.py SAMCONFIG ENV
"""

from __future__ import annotations

import io
import sys
import tomllib
import zipfile

README = b"""This archive is the fixed source of the model promotion deploy pipeline.
Executions are started by the start-deployment function with the ModelPackageArn variable;
nothing in this archive is used.
"""


def settings(path: str, env: str) -> dict[str, str]:
    config = tomllib.load(open(path, "rb"))
    section = config.get(env, {})
    merged: dict[str, str] = {}
    for command in ("global", "deploy"):
        merged.update((section.get(command) or {}).get("parameters") or {})
    return merged


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    import boto3

    config = settings(argv[0], argv[1])
    session = boto3.Session(profile_name=config.get("profile"), region_name=config.get("region"))
    stack = session.client("cloudformation").describe_stacks(StackName=config["stack_name"])["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    bucket, key = outputs["PipelineSourceObject"].removeprefix("s3://").split("/", 1)
    s3 = session.client("s3")
    try:
        s3.head_object(Bucket=bucket, Key=key, ExpectedBucketOwner=stack["StackId"].split(":")[4])
        print(f"pipeline source s3://{bucket}/{key} is in place")
        return 0
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.writestr("README.txt", README)
    s3.put_object(Bucket=bucket, Key=key, Body=body.getvalue(), ExpectedBucketOwner=stack["StackId"].split(":")[4])
    print(f"uploaded the pipeline source s3://{bucket}/{key}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
