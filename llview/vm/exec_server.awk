# llview guest exec server: reads requests from the exec serial line (stdin, raw mode) and runs
# them with sh, replying on stdout. A request is
#   @@LLVIEW-EXEC <id> <timeout-seconds>
#   <base64 of the shell script, any number of lines>
#   @@LLVIEW-RUN <id>
# and its reply is "@@LLVIEW-ACK <id>" when it starts, then "@@LLVIEW-BEGIN <id>", base64 of
# stdout+stderr, "@@LLVIEW-END <id> <status> <output length>". Each id runs at most once: the
# last one asked again (the host missed its reply) gets the same reply again, not a second run.
# A new header, or any line that is not base64, drops a half-received request, so a fragment
# left by a client that died mid-send never swallows the next request.
BEGIN {
    dir = "/tmp/.llview"
    system("mkdir -p " dir)
    script = dir "/cmd.b64"
    active = 0
}
{ sub(/\r$/, "") }
/^@@LLVIEW-EXEC [0-9a-f]+ [0-9]+$/ {
    close(script)  # awk only truncates a file on its first open: start each request afresh
    id = $2
    limit = $3
    active = 1
    printf "" > script
    next
}
/^@@LLVIEW-RUN [0-9a-f]+$/ {
    close(script)
    # A resent request (the host missed our acknowledgement) must not run twice.
    if (active && $2 == id && id != last) {
        last = id
        printf "@@LLVIEW-ACK %s\n", id
        fflush()
        system("sh /etc/llview/run-request " id " " limit)
    } else if (active && $2 == id) {
        printf "@@LLVIEW-ACK %s\n", id
        fflush()
        system("sh /etc/llview/run-request " id " again")
    }
    active = 0
    next
}
active && /^[A-Za-z0-9+\/=]+$/ { print > script; next }
active { active = 0; close(script) }
