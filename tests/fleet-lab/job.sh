#!/bin/sh
# A job of the fleet lab's table: records what it did in RECORDS (outside the namespaces),
# with the true clock (under libfaketime too: LD_PRELOAD and FAKETIME are dropped for date).
#   start JOB NODE RUN_ID ATTEMPT SCHEDULED EPOCH   when it starts
#   end   JOB NODE RUN_ID ATTEMPT SCHEDULED EPOCH   when it ends normally
#   term  ...                                        when stopped by SIGTERM
#   overlap JOB NODE RUN_ID OTHER_PID EPOCH          when another copy of JOB is alive
# Usage: job.sh RECORDS JOB NODE SECONDS
rec=$1 job=$2 node=$3 secs=$4
now() { env -u LD_PRELOAD -u FAKETIME date +%s.%N; }
pids="$rec.pids.$job"
# Another copy of this job alive now (any node: all run on this machine) is an overlap.
touch "$pids"
while read -r p; do
    case "$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")" in
    *"job.sh $rec $job "*) echo "overlap $job $node $CRONWARDEN_RUN_ID $p $(now)" >>"$rec" ;;
    esac
done <"$pids"
echo $$ >>"$pids"
what="$job $node $CRONWARDEN_RUN_ID $CRONWARDEN_ATTEMPT $CRONWARDEN_TS"
echo "start $what $(now)" >>"$rec"
trap 'echo "term $what $(now)" >>"$rec"; exit 143' TERM
sleep "$secs" &
wait $!
echo "end $what $(now)" >>"$rec"
