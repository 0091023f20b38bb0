"""S3 behaviours checked with boto3 (a client we did not write) against a running store.

Usage: conformance.py GROUP  with ENDPOINT, CA_BUNDLE (optional) and the users' keys in the
environment (ALICE_ID, ALICE_KEY, ALICE_SECRET, BOB_ID, BOB_KEY, BOB_SECRET). Each check
of the group runs; the output names every failing check and ends with "N passed, M failed".
The checks mirror ceph/s3-tests cases (named in each docstring).

It runs with Debian's python3-boto3 (botocore 1.29) as with current releases: parameters
older botocore releases do not model (PutObject's IfMatch, ListBuckets pagination) are sent
as the raw headers and query parameters they stand for.
"""

import datetime
import hashlib
import json
import os
import sys
import time
import traceback
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

# botocore signs with awscrt when it is installed (Debian's awscli brings it); that signer
# refuses to sign a negative X-Amz-Expires, which the presigned checks send on purpose. The
# pure-Python signer, what pip's boto3 uses, signs whatever it is given.
os.environ.setdefault("BOTO_DISABLE_CRT", "true")

import boto3  # noqa: E402
import botocore  # noqa: E402
import requests  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

ENDPOINT = os.environ["ENDPOINT"]
VERIFY = os.environ.get("CA_BUNDLE") or True
CHECKS = {}


def check(group):
    def register(fn):
        CHECKS.setdefault(group, []).append(fn)
        return fn

    return register


def client(user="ALICE", **extra):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=os.environ[user + "_KEY"],
        aws_secret_access_key=os.environ[user + "_SECRET"],
        region_name="us-east-1",
        verify=VERIFY,
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1},
            **extra,
        ),
    )


def anonymous():
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        verify=VERIFY,
        config=Config(
            s3={"addressing_style": "path"},
            signature_version=botocore.UNSIGNED,
            retries={"max_attempts": 1},
        ),
    )


def new_bucket(c=None):
    name = "b" + uuid.uuid4().hex[:20]
    (c or client()).create_bucket(Bucket=name)
    return name


def error(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    raise AssertionError("no error")


def eq(got, want, what=""):
    assert got == want, f"{what}: got {got!r}, want {want!r}"


def with_hooks(c, hooks, call, **kwargs):
    """Runs call(**kwargs) with the event handlers `hooks` ({event: handler}) registered."""
    for event, handler in hooks.items():
        c.meta.events.register(event, handler, unique_id="conformance-" + event)
    try:
        return call(**kwargs)
    finally:
        for event in hooks:
            c.meta.events.unregister(event, unique_id="conformance-" + event)


def put_if_match(c, if_match, **kwargs):
    """PutObject with an If-Match header (a parameter botocore models only since 1.35)."""

    def header(params, **_):
        params["headers"]["If-Match"] = if_match

    return with_hooks(c, {"before-call.s3.PutObject": header}, c.put_object, **kwargs)


def list_buckets_page(c, **query):
    """ListBuckets with `query` (max-buckets, continuation-token) as query parameters; the
    reply with its ContinuationToken read from the XML (botocore models pagination of
    ListBuckets only since 1.34)."""

    def add_query(request, **_):
        request.url += ("&" if "?" in request.url else "?") + urllib.parse.urlencode(query)

    def read_token(http_response, parsed, **_):
        parsed.pop("ContinuationToken", None)
        for el in ET.fromstring(http_response.content):
            if el.tag.endswith("}ContinuationToken") or el.tag == "ContinuationToken":
                parsed["ContinuationToken"] = el.text

    hooks = {"before-sign.s3.ListBuckets": add_query, "after-call.s3.ListBuckets": read_token}
    return with_hooks(c, hooks, c.list_buckets)


# ---------------------------------------------------------------- buckets


@check("buckets")
def create_bucket_you_own_again_is_200_and_keeps_contents():
    """test_bucket_create_exists, test_bucket_recreate_not_overriding"""
    c = client()
    b = new_bucket(c)
    c.put_object(Bucket=b, Key="mykey1", Body=b"1")
    r = c.create_bucket(Bucket=b)
    eq(r["ResponseMetadata"]["HTTPStatusCode"], 200)
    keys = [o["Key"] for o in c.list_objects(Bucket=b)["Contents"]]
    eq(keys, ["mykey1"])
    eq(error(client("BOB").create_bucket, Bucket=b), (409, "BucketAlreadyExists"))
    # Asking for another ACL than the bucket has is refused, and changes nothing
    # (test_bucket_recreate_overwrite_acl, test_bucket_recreate_new_acl).
    eq(error(c.create_bucket, Bucket=b, ACL="public-read"), (409, "BucketAlreadyExists"))
    c.put_bucket_acl(Bucket=b, ACL="public-read")
    eq(error(c.create_bucket, Bucket=b), (409, "BucketAlreadyExists"))
    grants = c.get_bucket_acl(Bucket=b)["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants), grants
    eq(c.create_bucket(Bucket=b, ACL="public-read")["ResponseMetadata"]["HTTPStatusCode"], 200)
    eq([o["Key"] for o in c.list_objects(Bucket=b)["Contents"]], ["mykey1"])


@check("buckets")
def list_buckets_paginates():
    """test_list_buckets_paginated"""
    c = client("BOB")
    names = sorted(new_bucket(c) for _ in range(3))
    r = list_buckets_page(c, **{"max-buckets": 2})
    mine = [b["Name"] for b in r["Buckets"]]
    eq(len(mine), 2)
    token = r["ContinuationToken"]
    rest = list_buckets_page(c, **{"max-buckets": 1000, "continuation-token": token})
    assert "ContinuationToken" not in rest
    every = mine + [b["Name"] for b in rest["Buckets"]]
    assert all(n in every for n in names), (names, every)
    eq(every, sorted(every))


@check("buckets")
def expected_bucket_owner_mismatch_is_403():
    """test_expected_bucket_owner"""
    c = client()
    b = new_bucket(c)
    c.put_bucket_acl(Bucket=b, ACL="public-read-write")
    wrong = os.environ["ALICE_ID"] + "foo"
    eq(error(anonymous().list_objects, Bucket=b, ExpectedBucketOwner=wrong), (403, "AccessDenied"))
    eq(
        error(anonymous().put_object, Bucket=b, Key="k", Body=b"x", ExpectedBucketOwner=wrong),
        (403, "AccessDenied"),
    )
    c.list_objects(Bucket=b, ExpectedBucketOwner=os.environ["ALICE_ID"])


@check("buckets")
def delete_bucket_with_an_upload_in_progress():
    """S3 deletes a bucket whose only content is an unfinished multipart upload."""
    c = client()
    b = new_bucket(c)
    c.create_multipart_upload(Bucket=b, Key="k")
    c.delete_bucket(Bucket=b)
    eq(error(c.head_bucket, Bucket=b)[0], 404)


# ---------------------------------------------------------------- objects


@check("objects")
def if_match_on_a_missing_key_is_404():
    """test_put_object_if_match"""
    c = client()
    b = new_bucket(c)
    eq(error(put_if_match, c, '"abc"', Bucket=b, Key="k", Body=b"x"), (404, "NoSuchKey"))
    etag = c.put_object(Bucket=b, Key="k", Body=b"x")["ETag"]
    eq(error(put_if_match, c, '"abc"', Bucket=b, Key="k", Body=b"y"), (412, "PreconditionFailed"))
    put_if_match(c, etag, Bucket=b, Key="k", Body=b"y")
    eq(c.get_object(Bucket=b, Key="k")["Body"].read(), b"y")


@check("objects")
def put_with_transfer_encoding_chunked_is_stored():
    """test_object_write_with_chunked_transfer_encoding"""
    c = client()
    b = new_bucket(c)

    def chunked(request, **kwargs):
        request.headers.add_header("Transfer-Encoding", "chunked")

    c.meta.events.register_first("before-sign.*.*", chunked)
    r = c.put_object(Bucket=b, Key="foo", Body="bar")
    eq(r["ResponseMetadata"]["HTTPStatusCode"], 200)
    body = client().get_object(Bucket=b, Key="foo")["Body"].read()
    eq(body, b"bar")
    # Past what is held in memory: spooled to a temporary file.
    big = os.urandom(3 * 1024 * 1024 + 17)
    c.put_object(Bucket=b, Key="big", Body=big)
    got = client().get_object(Bucket=b, Key="big")["Body"].read()
    eq(hashlib.md5(got).hexdigest(), hashlib.md5(big).hexdigest(), "spooled body")


@check("objects")
def empty_content_md5_is_invalid_digest():
    """test_object_create_bad_md5_empty"""
    c = client()
    b = new_bucket(c)

    def empty_md5(params, **kwargs):
        params["headers"]["Content-MD5"] = ""

    c.meta.events.register("before-call.s3.PutObject", empty_md5)
    eq(error(c.put_object, Bucket=b, Key="foo", Body="bar"), (400, "InvalidDigest"))


@check("objects")
def non_ascii_metadata_reads_back_exactly():
    """test_object_set_get_unicode_metadata"""
    c = client()
    b = new_bucket(c)

    def unicode_meta(params, **kwargs):
        params["headers"]["x-amz-meta-meta1"] = "Hello World\xe9"

    c.meta.events.register("before-call.s3.PutObject", unicode_meta)
    c.put_object(Bucket=b, Key="foo", Body="bar")
    got = client().get_object(Bucket=b, Key="foo")["Metadata"]["meta1"]
    eq(got, "Hello World\xe9")
    got = client().head_object(Bucket=b, Key="foo")["Metadata"]["meta1"]
    eq(got, "Hello World\xe9")
    # Text beyond ISO-8859-1 goes as S3 sends it: RFC 2047 encoded words.
    c2 = client()
    c2.put_object(Bucket=b, Key="jp", Body="x", Metadata={"m": "=?UTF-8?B?5pel5pys?="})
    got = c2.head_object(Bucket=b, Key="jp")["Metadata"]["m"]
    eq(got, "=?UTF-8?B?5pel5pys?=")


# ---------------------------------------------------------------- listing


def put_keys(c, b, keys):
    for k in keys:
        c.put_object(Bucket=b, Key=k, Body=k.encode())


@check("listing")
def empty_delimiter_is_no_delimiter():
    """test_bucket_list_delimiter_empty, test_bucket_listv2_delimiter_empty"""
    c = client()
    b = new_bucket(c)
    keys = ["b/a/c", "b/a/g", "b/a/r", "b/a/s"]
    put_keys(c, b, keys)
    r = c.list_objects(Bucket=b, Delimiter="")
    assert "Delimiter" not in r, r.get("Delimiter")
    eq([o["Key"] for o in r["Contents"]], keys)
    assert "CommonPrefixes" not in r
    r = c.list_objects_v2(Bucket=b, Delimiter="")
    assert "Delimiter" not in r
    eq([o["Key"] for o in r["Contents"]], keys)


@check("listing")
def url_encoding_round_trips_control_characters():
    """test_bucket_list_encoding_basic with a key holding a newline"""
    c = client()
    b = new_bucket(c)
    keys = ["foo+1/bar", "foo/bar/xyzzy", "quux ab/thud", "asdf+b", "line\nbreak", "tab\tkey"]
    put_keys(c, b, keys)
    r = c.list_objects(Bucket=b, Delimiter="/", EncodingType="url")
    eq(r["EncodingType"], "url")
    eq(sorted(p["Prefix"] for p in r["CommonPrefixes"]), ["foo%2B1/", "foo/", "quux%20ab/"])
    raw = c.list_objects_v2(Bucket=b)
    eq(sorted(o["Key"] for o in raw["Contents"]), sorted(keys))
    for k in ["line\nbreak", "tab\tkey"]:
        eq(c.get_object(Bucket=b, Key=k)["Body"].read(), k.encode())


@check("listing")
def unreadable_prefix_is_an_empty_listing():
    """test_bucket_list_prefix_unreadable, test_bucket_listv2_prefix_unreadable"""
    c = client()
    b = new_bucket(c)
    put_keys(c, b, ["foo/bar", "foo/baz", "quux"])
    r = c.list_objects(Bucket=b, Prefix="\x0a")
    eq(r["Prefix"], "\x0a")
    assert "Contents" not in r and "CommonPrefixes" not in r
    r = c.list_objects_v2(Bucket=b, Prefix="\x0a")
    eq(r["Prefix"], "\x0a")
    eq(r["KeyCount"], 0)


# ---------------------------------------------------------------- multipart

MIB = 1024 * 1024


def upload_parts(c, b, key, sizes):
    up = c.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
    parts = []
    for i, size in enumerate(sizes, start=1):
        r = c.upload_part(Bucket=b, Key=key, UploadId=up, PartNumber=i, Body=bytes([i]) * size)
        parts.append({"PartNumber": i, "ETag": r["ETag"]})
    return up, parts


@check("multipart")
def complete_with_no_parts_is_malformed_xml():
    """test_multipart_upload_empty"""
    c = client()
    b = new_bucket(c)
    up = c.create_multipart_upload(Bucket=b, Key="k")["UploadId"]
    got = error(c.complete_multipart_upload, Bucket=b, Key="k", UploadId=up, MultipartUpload={"Parts": []})
    eq(got, (400, "MalformedXML"))


@check("multipart")
def completing_again_answers_as_the_first_time():
    """test_multipart_upload_small, test_multipart_upload: the extra complete"""
    c = client()
    b = new_bucket(c)
    up, parts = upload_parts(c, b, "k", [1])
    first = c.complete_multipart_upload(Bucket=b, Key="k", UploadId=up, MultipartUpload={"Parts": parts})
    again = c.complete_multipart_upload(Bucket=b, Key="k", UploadId=up, MultipartUpload={"Parts": parts})
    eq(again["ETag"], first["ETag"])
    other = [{"PartNumber": 1, "ETag": '"ffffffffffffffffffffffffffffffff"'}]
    got = error(c.complete_multipart_upload, Bucket=b, Key="k", UploadId=up, MultipartUpload={"Parts": other})
    eq(got, (404, "NoSuchUpload"))
    c.put_object(Bucket=b, Key="k", Body=b"replaced")
    got = error(c.complete_multipart_upload, Bucket=b, Key="k", UploadId=up, MultipartUpload={"Parts": parts})
    eq(got, (404, "NoSuchUpload"))


@check("multipart")
def part_number_reads_of_one_part_objects():
    """test_non_multipart_get_part, test_multipart_single_get_part"""
    c = client()
    b = new_bucket(c)
    etag = c.put_object(Bucket=b, Key="single", Body=b"body")["ETag"]
    eq(error(c.get_object, Bucket=b, Key="single", PartNumber=2), (400, "InvalidPart"))
    r = c.get_object(Bucket=b, Key="single", PartNumber=1)
    eq((r["ETag"], r["Body"].read(), r["PartsCount"]), (etag, b"body", 1))
    up, parts = upload_parts(c, b, "mp", [5 * MIB])
    eq(error(c.get_object, Bucket=b, Key="mp", PartNumber=1), (404, "NoSuchKey"))
    done = c.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up, MultipartUpload={"Parts": parts})
    h = c.head_object(Bucket=b, Key="mp", PartNumber=1)
    eq((h["PartsCount"], h["ETag"], h["ContentLength"]), (1, done["ETag"], 5 * MIB))


@check("multipart")
def small_non_last_part_is_entity_too_small():
    """test_multipart_upload_small"""
    c = client()
    b = new_bucket(c)
    up, parts = upload_parts(c, b, "k", [1024, 1024])
    got = error(c.complete_multipart_upload, Bucket=b, Key="k", UploadId=up, MultipartUpload={"Parts": parts})
    eq(got, (400, "EntityTooSmall"))


@check("multipart")
def missing_part_or_wrong_etag_is_invalid_part():
    """test_multipart_upload_missing_part, test_multipart_upload_incorrect_etag"""
    c = client()
    b = new_bucket(c)
    up, parts = upload_parts(c, b, "k", [10])
    missing = [{"PartNumber": 9999, "ETag": parts[0]["ETag"]}]
    got = error(c.complete_multipart_upload, Bucket=b, Key="k", UploadId=up, MultipartUpload={"Parts": missing})
    eq(got, (400, "InvalidPart"))
    wrong = [{"PartNumber": 1, "ETag": '"ffffffffffffffffffffffffffffffff"'}]
    got = error(c.complete_multipart_upload, Bucket=b, Key="k", UploadId=up, MultipartUpload={"Parts": wrong})
    eq(got, (400, "InvalidPart"))


@check("multipart")
def resent_part_replaces_the_old_one():
    """test_multipart_upload_resend_part"""
    c = client()
    b = new_bucket(c)
    up, parts = upload_parts(c, b, "k", [5 * MIB, 100])
    r = c.upload_part(Bucket=b, Key="k", UploadId=up, PartNumber=2, Body=b"z" * 200)
    parts[1]["ETag"] = r["ETag"]
    c.complete_multipart_upload(Bucket=b, Key="k", UploadId=up, MultipartUpload={"Parts": parts})
    body = c.get_object(Bucket=b, Key="k")["Body"].read()
    eq(len(body), 5 * MIB + 200)
    eq(body[-200:], b"z" * 200)


@check("multipart")
def upload_part_copy_ranges_and_encoded_source_keys():
    """test_multipart_copy_invalid_range, test_multipart_copy_improper_range,
    test_multipart_copy_special_names"""
    c = client()
    b = new_bucket(c)
    src = "a key/with?odd&chars+é"
    c.put_object(Bucket=b, Key=src, Body=b"0123456789")
    up = c.create_multipart_upload(Bucket=b, Key="dst")["UploadId"]
    source = {"Bucket": b, "Key": src}
    for bad, code in [("bytes=0-21", "InvalidRange"), ("bytes=5-2", "InvalidRange")]:
        got = error(c.upload_part_copy, Bucket=b, Key="dst", UploadId=up, PartNumber=1,
                    CopySource=source, CopySourceRange=bad)
        eq(got, (400, code), bad)
    for bad in ["0-2", "bytes=-2", "bytes=a-b", "bytes=2"]:
        got = error(c.upload_part_copy, Bucket=b, Key="dst", UploadId=up, PartNumber=1,
                    CopySource=source, CopySourceRange=bad)
        eq(got, (400, "InvalidArgument"), bad)
    r = c.upload_part_copy(Bucket=b, Key="dst", UploadId=up, PartNumber=1, CopySource=source,
                           CopySourceRange="bytes=2-5")
    parts = [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]
    c.complete_multipart_upload(Bucket=b, Key="dst", UploadId=up, MultipartUpload={"Parts": parts})
    eq(c.get_object(Bucket=b, Key="dst")["Body"].read(), b"2345")
    # CopyObject: botocore sends the source percent-encoded (`a%20key/with%3Fodd...`).
    c.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": src})
    eq(c.get_object(Bucket=b, Key="copy")["Body"].read(), b"0123456789")


# ---------------------------------------------------------------- presigned


@check("presigned")
def expires_out_of_range_is_403():
    """test_object_raw_get_x_amz_expires_out_max_range, ..._out_positive_range"""
    c = client()
    b = new_bucket(c)
    c.put_object(Bucket=b, Key="foo", Body=b"bar", ACL="public-read")
    for expires, status in [(609901, 403), (-7, 403), (100000, 200)]:
        url = c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "foo"}, ExpiresIn=expires)
        r = requests.get(url, verify=VERIFY)
        eq(r.status_code, status, f"X-Amz-Expires={expires}")
        if status == 403:
            assert "AuthorizationQueryParametersError" in r.text, r.text
    # OPTIONS on a presigned URL without CORS headers is a 400, not a 500.
    url = c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "foo"}, ExpiresIn=100)
    eq(requests.options(url, verify=VERIFY).status_code, 400)


@check("presigned")
def expired_presigned_put_is_403():
    """test_object_presigned_put_object_expired (mirrors the GET case)"""
    c = client()
    b = new_bucket(c)
    url = c.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "foo"}, ExpiresIn=1)
    time.sleep(2.2)
    r = requests.put(url, data=b"late", verify=VERIFY)
    eq(r.status_code, 403)
    assert "AccessDenied" in r.text or "Request has expired" in r.text, r.text
    eq(error(c.head_object, Bucket=b, Key="foo")[0], 404)
    url = c.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "foo"}, ExpiresIn=60)
    eq(requests.put(url, data=b"on time", verify=VERIFY).status_code, 200)


# ---------------------------------------------------------------- acl


def grants(resp):
    return [
        (g["Permission"], g["Grantee"]["Type"], g["Grantee"].get("ID"), g["Grantee"].get("DisplayName"),
         g["Grantee"].get("URI"))
        for g in resp["Grants"]
    ]


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


@check("acl")
def canned_acls_show_every_grant():
    """test_bucket_acl_canned*, test_object_acl_canned*"""
    c = client()
    alice, bob = os.environ["ALICE_ID"], os.environ["BOB_ID"]
    alice_name, bob_name = os.environ["ALICE_NAME"], os.environ["BOB_NAME"]
    b = "b" + uuid.uuid4().hex[:20]
    c.create_bucket(Bucket=b, ACL="public-read")
    eq(grants(c.get_bucket_acl(Bucket=b)), [
        ("READ", "Group", None, None, ALL_USERS),
        ("FULL_CONTROL", "CanonicalUser", alice, alice_name, None),
    ])
    c.put_bucket_acl(Bucket=b, ACL="authenticated-read")
    eq(grants(c.get_bucket_acl(Bucket=b)), [
        ("READ", "Group", None, None, AUTH_USERS),
        ("FULL_CONTROL", "CanonicalUser", alice, alice_name, None),
    ])
    c.put_bucket_acl(Bucket=b, ACL="public-read-write")
    c.put_object(Bucket=b, Key="own", Body=b"x", ACL="public-read-write")
    eq(grants(c.get_object_acl(Bucket=b, Key="own")), [
        ("READ", "Group", None, None, ALL_USERS),
        ("WRITE", "Group", None, None, ALL_USERS),
        ("FULL_CONTROL", "CanonicalUser", alice, alice_name, None),
    ])
    bob_c = client("BOB")
    bob_c.put_object(Bucket=b, Key="r", Body=b"x", ACL="bucket-owner-read")
    eq(grants(bob_c.get_object_acl(Bucket=b, Key="r")), [
        ("FULL_CONTROL", "CanonicalUser", bob, bob_name, None),
        ("READ", "CanonicalUser", alice, alice_name, None),
    ])
    bob_c.put_object(Bucket=b, Key="f", Body=b"x", ACL="bucket-owner-full-control")
    eq(grants(bob_c.get_object_acl(Bucket=b, Key="f")), [
        ("FULL_CONTROL", "CanonicalUser", bob, bob_name, None),
        ("FULL_CONTROL", "CanonicalUser", alice, alice_name, None),
    ])


@check("acl")
def acl_revoke_all_and_unknown_grantee():
    """test_bucket_acl_revoke_all, test_bucket_acl_grant_nonexist_user"""
    c = client()
    b = new_bucket(c)
    old = c.get_bucket_acl(Bucket=b)
    c.put_bucket_acl(Bucket=b, AccessControlPolicy={"Owner": old["Owner"], "Grants": []})
    eq(c.get_bucket_acl(Bucket=b)["Grants"], [])
    c.put_bucket_acl(Bucket=b, AccessControlPolicy={"Owner": old["Owner"], "Grants": old["Grants"]})
    eq(len(c.get_bucket_acl(Bucket=b)["Grants"]), 1)
    bad = {"Owner": old["Owner"], "Grants": old["Grants"] + [
        {"Grantee": {"ID": "nobody-here", "Type": "CanonicalUser"}, "Permission": "READ"}]}
    eq(error(c.put_bucket_acl, Bucket=b, AccessControlPolicy=bad), (400, "InvalidArgument"))


# ---------------------------------------------------------------- policy


def policy(statements):
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


@check("policy")
def wildcard_resources_and_other_buckets():
    """test_bucket_policy_*: Resource wildcards; a resource naming another bucket"""
    c = client()
    b = new_bucket(c)
    c.put_object(Bucket=b, Key="k", Body=b"v")
    c.put_bucket_policy(Bucket=b, Policy=policy([
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*"}]))
    eq(anonymous().get_object(Bucket=b, Key="k")["Body"].read(), b"v")
    prefix = b[:5]
    c.put_bucket_policy(Bucket=b, Policy=policy([
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{prefix}*/*"}]))
    eq(anonymous().get_object(Bucket=b, Key="k")["Body"].read(), b"v")
    other = policy([{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                     "Resource": "arn:aws:s3:::some-other-bucket/*"}])
    eq(error(c.put_bucket_policy, Bucket=b, Policy=other), (400, "MalformedPolicy"))
    for cond in [{"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
                 {"StringEquals": {"s3:ExistingObjectTag/a": "b"}}]:
        doc = policy([{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{b}/*", "Condition": cond}])
        eq(error(c.put_bucket_policy, Bucket=b, Policy=doc), (400, "MalformedPolicy"), json.dumps(cond))


@check("policy")
def conditions_on_acl_header_apply_to_puts_and_multipart():
    """test_bucket_policy_put_obj_acl"""
    c = client()
    b = new_bucket(c)
    res = f"arn:aws:s3:::{b}/*"
    c.put_bucket_policy(Bucket=b, Policy=policy([
        {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "Resource": res},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": res,
         "Condition": {"StringLike": {"s3:x-amz-acl": "public*"}}},
    ]))
    bob = client("BOB")
    bob.put_object(Bucket=b, Key="private-key", Body=b"x")
    eq(error(bob.put_object, Bucket=b, Key="public-key", Body=b"x", ACL="public-read")[0], 403)
    eq(error(bob.create_multipart_upload, Bucket=b, Key="mp", ACL="public-read")[0], 403)
    up = bob.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    part = bob.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=b"p")
    bob.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up,
                                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})


@check("policy")
def conditions_on_source_ip_transport_and_referer():
    """test_bucket_policy_*: IpAddress / NotIpAddress, Bool aws:SecureTransport, aws:Referer"""
    c = client()
    b = new_bucket(c)
    c.put_object(Bucket=b, Key="k", Body=b"v")
    res = f"arn:aws:s3:::{b}/*"
    secure = ENDPOINT.startswith("https")

    def allow_get(cond):
        c.put_bucket_policy(Bucket=b, Policy=policy([
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": res, "Condition": cond}]))

    url = f"{ENDPOINT}/{b}/k"
    allow_get({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})
    eq(requests.get(url, verify=VERIFY).status_code, 200, "from 127.0.0.1")
    allow_get({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    eq(requests.get(url, verify=VERIFY).status_code, 403, "not from 10/8")
    allow_get({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    eq(requests.get(url, verify=VERIFY).status_code, 200, "NotIpAddress")
    allow_get({"Bool": {"aws:SecureTransport": "true" if secure else "false"}})
    eq(requests.get(url, verify=VERIFY).status_code, 200, "SecureTransport matches")
    allow_get({"Bool": {"aws:SecureTransport": "false" if secure else "true"}})
    eq(requests.get(url, verify=VERIFY).status_code, 403, "SecureTransport differs")
    allow_get({"StringLike": {"aws:Referer": "http://www.example.com/*"}})
    eq(requests.get(url, headers={"Referer": "http://www.example.com/page"}, verify=VERIFY).status_code, 200)
    eq(requests.get(url, headers={"Referer": "http://evil.example/"}, verify=VERIFY).status_code, 403)
    eq(requests.get(url, verify=VERIFY).status_code, 403, "no referer")
    allow_get({"StringNotLikeIfExists": {"aws:Referer": "http://evil.example/*"}})
    eq(requests.get(url, verify=VERIFY).status_code, 200, "IfExists without a referer")


@check("policy")
def conditions_on_listing_parameters():
    """test_bucket_policy_*: s3:prefix, s3:delimiter, s3:max-keys on ListBucket"""
    c = client()
    b = new_bucket(c)
    put_keys(c, b, ["home/a", "home/b", "work/c"])
    c.put_bucket_policy(Bucket=b, Policy=policy([
        {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{b}",
         "Condition": {"StringEquals": {"s3:prefix": "home/", "s3:delimiter": "/"},
                       "NumericLessThanEquals": {"s3:max-keys": "10"}}}]))
    anon = anonymous()
    r = anon.list_objects(Bucket=b, Prefix="home/", Delimiter="/", MaxKeys=5)
    eq([o["Key"] for o in r["Contents"]], ["home/a", "home/b"])
    eq(error(anon.list_objects, Bucket=b, Prefix="work/", Delimiter="/", MaxKeys=5)[0], 403)
    eq(error(anon.list_objects, Bucket=b, Prefix="home/", Delimiter="/", MaxKeys=50)[0], 403)
    eq(error(anon.list_objects, Bucket=b, Prefix="home/", MaxKeys=5)[0], 403)


@check("policy")
def head_of_a_missing_key_under_a_listable_prefix_is_404():
    """test_head_object_404_with_policy_prefix"""
    c = client()
    b = new_bucket(c)
    c.put_bucket_policy(Bucket=b, Policy=policy([
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:ListBucket",
         "Resource": f"arn:aws:s3:::{b}", "Condition": {"StringLike": {"s3:prefix": "public/*"}}}]))
    bob = client("BOB")
    eq(error(bob.head_object, Bucket=b, Key="public/object")[0], 404)
    eq(error(bob.head_object, Bucket=b, Key="private/object")[0], 403)


@check("policy")
def service_principals_are_accepted_and_match_no_caller():
    """test_put_bucket_logging: the log delivery policy names a service principal"""
    c = client()
    b = new_bucket(c)
    c.put_object(Bucket=b, Key="k", Body=b"v")
    # The log delivery grant as AWS documents it, conditions and all.
    c.put_bucket_policy(Bucket=b, Policy=policy([
        {"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{b}/*",
         "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::src"},
                       "StringEquals": {"aws:SourceAccount": "123456789012"}}},
        {"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{b}/*"}]))
    eq(error(anonymous().get_object, Bucket=b, Key="k")[0], 403)
    eq(error(client("BOB").put_object, Bucket=b, Key="x", Body=b"x")[0], 403)


@check("policy")
def head_of_a_missing_key_is_404_for_who_may_list():
    """test_bucket_policy_get_obj_*: HEAD of a missing key with s3:ListBucket allowed"""
    c = client()
    b = new_bucket(c)
    c.put_bucket_policy(Bucket=b, Policy=policy([
        {"Effect": "Allow", "Principal": "*", "Action": ["s3:ListBucket", "s3:GetObject"],
         "Resource": [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*"]}]))
    eq(error(anonymous().head_object, Bucket=b, Key="missing")[0], 404)
    eq(error(anonymous().get_object, Bucket=b, Key="missing"), (404, "NoSuchKey"))
    c.put_bucket_policy(Bucket=b, Policy=policy([
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{b}/*"}]))
    eq(error(anonymous().head_object, Bucket=b, Key="missing")[0], 403)


# ---------------------------------------------------------------- cors


def cors_check(method, url, headers, status, origin, methods):
    r = getattr(requests, method)(url, headers=headers, verify=VERIFY)
    eq(r.status_code, status, f"{method} {headers}")
    eq(r.headers.get("access-control-allow-origin"), origin, f"allow-origin {headers}")
    eq(r.headers.get("access-control-allow-methods"), methods, f"allow-methods {headers}")
    return r


@check("cors")
def actual_requests_get_cors_headers():
    """test_cors_origin_response, test_cors_origin_wildcard, test_cors_header_option"""
    c = client()
    b = new_bucket(c)
    c.put_bucket_acl(Bucket=b, ACL="public-read")
    c.put_object(Bucket=b, Key="obj", Body=b"x", ACL="public-read")
    c.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["*suffix"], "ExposeHeaders": ["x-amz-meta-header1", "ETag"]},
        {"AllowedMethods": ["PUT"], "AllowedOrigins": ["*.put"]},
    ]})
    url = f"{ENDPOINT}/{b}"
    cors_check("get", url, {}, 200, None, None)
    r = cors_check("get", url, {"Origin": "foo.suffix"}, 200, "foo.suffix", "GET")
    eq(r.headers.get("access-control-expose-headers"), "x-amz-meta-header1, ETag")
    cors_check("get", url, {"Origin": "foo.bar"}, 200, None, None)
    cors_check("get", url + "/missing", {"Origin": "foo.suffix"}, 404, "foo.suffix", "GET")
    cors_check("put", url + "/obj", {"Origin": "foo.suffix", "Access-Control-Request-Method": "GET"},
               403, "foo.suffix", "GET")
    cors_check("put", url + "/obj", {"Origin": "foo.suffix"}, 403, None, None)
    cors_check("put", url + "/obj", {"Origin": "foo.put"}, 403, "foo.put", "PUT")
    cors_check("options", url, {}, 400, None, None)
    cors_check("options", url, {"Origin": "foo.suffix"}, 400, None, None)
    cors_check("options", url + "/obj", {"Origin": "foo.suffix", "Access-Control-Request-Method": "GET"},
               200, "foo.suffix", "GET")
    cors_check("options", url, {"Origin": "foo.bar", "Access-Control-Request-Method": "GET"}, 403, None, None)
    c.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]})
    cors_check("get", url, {"Origin": "example.origin"}, 200, "*", "GET")
    cors_check("options", url, {"Origin": "example.origin", "Access-Control-Request-Method": "GET"}, 200, "*", "GET")


@check("cors")
def presigned_requests_get_cors_headers():
    """test_cors_presigned_get_object, test_cors_presigned_put_object(_with_acl)"""
    c = client()
    b = new_bucket(c)
    c.put_object(Bucket=b, Key="foo", Body=b"bar")
    for method, http_method, params in [("get_object", "GET", {}), ("put_object", "PUT", {}),
                                        ("put_object", "PUT", {"ACL": "private"})]:
        url = c.generate_presigned_url(method, Params={"Bucket": b, "Key": "foo", **params},
                                       ExpiresIn=100000, HttpMethod=http_method)
        eq(requests.options(url, verify=VERIFY).status_code, 400)
        c.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": [
            {"AllowedMethods": [http_method], "AllowedOrigins": ["example"]}]})
        headers = {"Origin": "example", "Access-Control-Request-Method": http_method}
        cors_check("options", url, headers, 200, "example", http_method)
        actual = {"Origin": "example"}
        if http_method == "GET":
            r = cors_check("get", url, actual, 200, "example", "GET")
            eq(r.content, b"bar")
        else:
            extra = {"x-amz-acl": params["ACL"]} if params else {}
            cors_check("put", url, {**actual, **extra}, 200, "example", "PUT")


# ---------------------------------------------------------------- access logs


@check("logging")
def logging_configuration_is_the_owners():
    """test_put_bucket_logging*, test_bucket_logging_owner"""
    c = client()
    src, dst = new_bucket(c), new_bucket(c)
    eq(c.get_bucket_logging(Bucket=src).get("LoggingEnabled"), None)
    status = {"LoggingEnabled": {"TargetBucket": dst, "TargetPrefix": "logs/"}}
    c.put_bucket_logging(Bucket=src, BucketLoggingStatus=status)
    eq(c.get_bucket_logging(Bucket=src)["LoggingEnabled"], {"TargetBucket": dst, "TargetPrefix": "logs/"})
    bob = client("BOB")
    c.put_bucket_acl(Bucket=src, ACL="public-read-write")
    eq(error(bob.put_bucket_logging, Bucket=src, BucketLoggingStatus=status)[0], 403)
    eq(error(bob.get_bucket_logging, Bucket=src)[0], 403)
    bobs = new_bucket(bob)
    theirs = {"LoggingEnabled": {"TargetBucket": bobs, "TargetPrefix": "x/"}}
    eq(error(c.put_bucket_logging, Bucket=src, BucketLoggingStatus=theirs), (400, "InvalidTargetBucketForLogging"))
    gone = {"LoggingEnabled": {"TargetBucket": "no-such-bucket-here", "TargetPrefix": "x/"}}
    eq(error(c.put_bucket_logging, Bucket=src, BucketLoggingStatus=gone), (400, "InvalidTargetBucketForLogging"))
    c.put_bucket_logging(Bucket=src, BucketLoggingStatus={})
    eq(c.get_bucket_logging(Bucket=src).get("LoggingEnabled"), None)


def main():
    group = sys.argv[1]
    passed, failed = 0, []
    for fn in CHECKS[group]:
        try:
            fn()
            passed += 1
            print(f"ok {fn.__name__}")
        except Exception:  # noqa: BLE001 - every failure is reported
            failed.append(fn.__name__)
            print(f"FAIL {fn.__name__}\n{traceback.format_exc()}")
    print(f"{passed} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
