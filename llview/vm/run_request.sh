#!/bin/sh
# llview guest: runs one decoded `vm exec` request and prints its framed reply (installed as
# /etc/llview/run-request; called by exec-server.awk as: run-request ID TIMEOUT).
dir=/tmp/.llview
id=$1
limit=$2
if base64 -d "$dir/cmd.b64" > "$dir/cmd" 2>/dev/null; then
    rm -f "$dir/pgid"
    # Own session and process group, so a timeout can end everything the command started.
    timeout "$limit" setsid sh -c "echo \$\$ > $dir/pgid; exec sh $dir/cmd" \
        > "$dir/out" 2>&1 < /dev/null
    rc=$?
    if [ "$rc" -eq 143 ] && [ -s "$dir/pgid" ]; then
        kill -KILL -- "-$(cat "$dir/pgid")" 2>/dev/null
    fi
else
    echo "llview: the request did not decode" > "$dir/out"
    rc=255
fi
echo "@@LLVIEW-BEGIN $id"
base64 "$dir/out"
echo "@@LLVIEW-END $id $rc $(wc -c < "$dir/out")"
