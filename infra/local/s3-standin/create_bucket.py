"""`mc mb --ignore-existing` for the stand-in: create FRAUD_BUCKET on the S3 endpoint with the
compose file's credentials, whatever characters the password holds."""

import os

import boto3

client = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    aws_access_key_id=os.environ["MINIO_ROOT_USER"],
    aws_secret_access_key=os.environ["MINIO_ROOT_PASSWORD"],
    region_name="us-east-1",
)
bucket = os.environ["FRAUD_BUCKET"]
if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
    client.create_bucket(Bucket=bucket)
print(f"bucket {bucket} ready")
