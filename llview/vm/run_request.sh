#!/bin/sh
# llview guest: runs one decoded `vm exec` request and prints its framed reply (installed as
# /etc/llview/run-request; called by exec-server.awk as: run-request ID TIMEOUT, or as
# run-request ID again to print the reply of the request that ran last once more).
dir=/tmp/.llview
id=$1
limit=$2
if [ "$limit" = again ]; then
    rc=$(cat "$dir/rc" 2>/dev/null || echo 255)
elif base64 -d "$dir/cmd.b64" > "$dir/cmd" 2>/dev/null; then
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
[ "$limit" = again ] || echo "$rc" > "$dir/rc"
echo "@@LLVIEW-BEGIN $id"
base64 "$dir/out"
echo "@@LLVIEW-END $id $rc $(wc -c < "$dir/out")"
