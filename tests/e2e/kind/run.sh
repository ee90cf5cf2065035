#!/usr/bin/env bash
# ferrolb end to end on kind: a 3-node cluster, the image archive, the rendered
# manifest, a pool at the top of the kind Docker network, an echo app behind a
# LoadBalancer Service; then `docker pause` the announcing node and measure
# how long the IP goes unanswered, and check that exactly one MAC answers ARP
# after the node comes back. Linux hosts with Docker only (the host must reach
# the kind network directly). See tests/e2e/kind/README.md.
#
# Usage: tests/e2e/kind/run.sh [--name CLUSTER] [--archive PATH] [--keep]
# Environment: CLUSTER, ARCHIVE, KEEP=1, NODE_IMAGE, ECHO_IMAGE, PY_IMAGE,
#   TIMEOUT (s, each wait), LIMIT (s, failover probe), KIND_EXPERIMENTAL_DOCKER_NETWORK
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
CLUSTER=${CLUSTER:-ferrolb-e2e}
ARCHIVE=${ARCHIVE:-}
KEEP=${KEEP:-0}
MANIFEST=${MANIFEST:-$repo/deploy/ferrolb.yaml}
NODE_IMAGE=${NODE_IMAGE:-}
ECHO_IMAGE=${ECHO_IMAGE:-registry.k8s.io/e2e-test-images/agnhost:2.53}
PY_IMAGE=${PY_IMAGE:-python:3-slim}
NETWORK=${KIND_EXPERIMENTAL_DOCKER_NETWORK:-kind}
TIMEOUT=${TIMEOUT:-180}
LIMIT=${LIMIT:-60}
NS=ferrolb-system

while (($#)); do
    case $1 in
        --name) CLUSTER=${2:?--name needs a value}; shift 2 ;;
        --archive) ARCHIVE=${2:?--archive needs a value}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
# wait_until SECONDS WHAT COMMAND...: retry COMMAND every 0.1 s.
wait_until() {
    local limit=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || die "waited ${limit}s for $what"
        sleep 0.1
    done
}
probe() { python3 "$here/probe.py" "$@"; }
# One ARP who-has per second from a helper container on the kind network.
arp_rounds() {
    docker run --rm -i --net "$NETWORK" --cap-add NET_RAW "$PY_IMAGE" \
        python3 - arp "$1" --rounds "$2" <"$here/probe.py"
}

[[ $(uname -s) == Linux ]] || die "needs Linux: Docker Desktop does not route the host to the kind network"
for tool in docker kind kubectl python3 curl; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
clusters=$(kind get clusters 2>/dev/null)
if grep -qx "$CLUSTER" <<<"$clusters"; then
    die "a kind cluster named $CLUSTER exists; pick another --name or delete it"
fi

tmp=$(mktemp -d)
paused=""
cleanup() {
    local rc=$?
    if [[ -n $paused ]]; then docker unpause "$paused" >/dev/null 2>&1 || true; fi
    if [[ $KEEP == 1 ]]; then
        echo "KEEP=1: kept cluster $CLUSTER (KUBECONFIG=$tmp/kubeconfig); remove with: kind delete cluster --name $CLUSTER"
    else
        kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z $ARCHIVE ]]; then
    say "building the image archive (scripts/image)"
    [[ -x $repo/scripts/image ]] || die "scripts/image not found; pass --archive PATH"
    "$repo/scripts/image"
    ARCHIVE=$repo/target/image/ferrolb.tar
fi
[[ -f $ARCHIVE ]] || die "no image archive at $ARCHIVE"
docker image inspect "$PY_IMAGE" >/dev/null 2>&1 || docker pull -q "$PY_IMAGE" >/dev/null

say "creating kind cluster $CLUSTER (1 control-plane, 2 workers)"
create=(kind create cluster --name "$CLUSTER" --kubeconfig "$tmp/kubeconfig" --wait "${TIMEOUT}s" --config=-)
if [[ -n $NODE_IMAGE ]]; then create+=(--image "$NODE_IMAGE"); fi
"${create[@]}" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes: [{role: control-plane}, {role: worker}, {role: worker}]
EOF
export KUBECONFIG=$tmp/kubeconfig
minor=$(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["minor"].rstrip("+"))')
((minor >= 31)) || die "Kubernetes 1.$minor: the CRDs need 1.31+ (kind >= 0.24, or NODE_IMAGE=kindest/node:v1.31.x)"
mapfile -t nodes < <(kind get nodes --name "$CLUSTER" | sort)

say "loading $ARCHIVE into every node"
kind load image-archive "$ARCHIVE" --name "$CLUSTER"
image=$(awk '$1 == "image:" || $1 == "-" && $2 == "image:" { print $NF; exit }' "$MANIFEST")
for node in "${nodes[@]}"; do
    docker exec "$node" crictl inspecti "$image" >/dev/null ||
        die "$node has no $image after the load: the archive must carry that name"
done

say "installing $MANIFEST"
kubectl apply -f "$MANIFEST"
kubectl wait --for=condition=Established --timeout="${TIMEOUT}s" \
    crd/ipaddresspools.ferrolb.io crd/l2advertisements.ferrolb.io crd/servicel2statuses.ferrolb.io
kubectl -n "$NS" rollout status deployment/ferrolb-controller --timeout="${TIMEOUT}s"
kubectl -n "$NS" rollout status daemonset/ferrolb-speaker --timeout="${TIMEOUT}s"

range=$(docker network inspect "$NETWORK" -f '{{json .IPAM.Config}}' | probe pool)
say "pool $range (top of the $NETWORK network), announced on eth0 of the workers"
kubectl apply -f - <<EOF
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: kind, namespace: $NS}
spec:
  addresses: ["$range"]
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: kind, namespace: $NS}
spec:
  ipAddressPools: [kind]
  nodeSelectors:
  - matchExpressions:
    - {key: node-role.kubernetes.io/control-plane, operator: DoesNotExist}
  interfaces: [eth0]
EOF

say "waiting for the memberlist Secret and for every speaker to gossip with ${#nodes[@]} members"
gossiping() {
    local pod metrics
    kubectl -n "$NS" get secret ferrolb-memberlist >/dev/null 2>&1 || return 1
    for pod in $(kubectl -n "$NS" get pods -l app.kubernetes.io/component=speaker -o name); do
        metrics=$(kubectl get --raw "/api/v1/namespaces/$NS/pods/${pod#pod/}:7473/proxy/metrics") || return 1
        [[ $metrics == *'ferrolb_speaker_liveness_source{source="gossip"} 1'* ]] || return 1
        [[ $metrics == *"ferrolb_speaker_members_alive ${#nodes[@]}"* ]] || return 1
    done
}
wait_until "$TIMEOUT" "gossip on every speaker (ferrolb_speaker_liveness_source)" gossiping

say "echo app: 2 agnhost replicas, one per worker, Service type LoadBalancer"
# externalTrafficPolicy Local: `docker pause` freezes processes but not the
# node's kernel, which would keep forwarding to the other worker's Pod under
# Cluster; with Local the paused owner's path goes dark completely.
kubectl apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
         labelSelector: {matchLabels: {app: echo}}}
      containers:
      - name: echo
        image: $ECHO_IMAGE
        args: [netexec, --http-port=8080]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /hostname, port: 8080}, periodSeconds: 2}
EOF
kubectl rollout status deployment/echo --timeout="${TIMEOUT}s"
spread=$(kubectl get pods -l app=echo -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u)
[[ $(wc -l <<<"$spread") == 2 ]] || die "echo Pods are not on two nodes: $spread"
t0=$(date +%s%N)
kubectl apply -f - <<EOF
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
EOF
lb_ip() { ip=$(kubectl get svc echo -o jsonpath='{.status.loadBalancer.ingress[0].ip}') && [[ -n $ip ]]; }
wait_until 60 "EXTERNAL-IP of Service echo" lb_ip
ip_ms=$((($(date +%s%N) - t0) / 1000000))
read -r first_ms first_pod < <(probe first "$ip" 80 --since-ns "$t0" --limit 60)
say "EXTERNAL-IP $ip after $ip_ms ms; first answer after $first_ms ms from $first_pod; curl from the host:"
curl -fsS --max-time 5 "http://$ip/hostname"
echo

declare -A node_of_mac
for node in "${nodes[@]}"; do
    mac=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NETWORK\").MacAddress}}" "$node")
    node_of_mac[$mac]=$node
done
node_of() { if [[ -n ${1:-} ]]; then echo "${node_of_mac[$1]:-not a node}"; else echo none; fi; }
# The announcing node per the API (newest nodeAssigned Event) must be the one
# whose MAC answers ARP.
agreed() {
    local macs
    owner=$(kubectl get events --field-selector involvedObject.name=echo,reason=nodeAssigned -o json | probe owner)
    macs=$(arp_rounds "$ip" 1)
    [[ -n $owner && $macs != *" "* && $(node_of "$macs") == "$owner" ]]
}
wait_until 60 "a nodeAssigned Event naming the node that answers ARP for $ip" agreed
say "announcing node: $owner; pausing its container"

paused=$owner
read -r gap_ms recover_ms probes failed pod_before pod_after < \
    <(probe failover "$ip" 80 --limit "$LIMIT" -- docker pause "$owner")
docker unpause "$owner" >/dev/null
paused=""
say "unpaused $owner; ARP for $ip once a second for 5 s"
mapfile -t rounds < <(arp_rounds "$ip" 5)
((${#rounds[@]} == 5)) || die "the ARP check did not run (docker run --net $NETWORK $PY_IMAGE)"
printf '  answering: %s\n' "${rounds[@]}"
answering=${rounds[-1]}
read -ra last <<<"$answering"
[[ $recover_ms == none ]] || recover_ms+=" ms"

printf '\n%-46s %s\n' "ferrolb on kind ($CLUSTER)" "result"
printf '%-46s %s\n' "Service created -> EXTERNAL-IP (kubectl poll)" "$ip_ms ms" \
    "Service created -> first answer" "$first_ms ms" \
    "announcing node before the pause" "$owner" \
    "docker pause -> first answer" "$recover_ms ($pod_before -> $pod_after)" \
    "longest gap without an answer" "$gap_ms ms ($failed of $probes probes failed)" \
    "MACs answering ARP 5 s after unpause" "${#last[@]}: ${answering:-none} ($(node_of "${last[0]:-}"))"
[[ $recover_ms != none ]] || die "$ip did not answer within ${LIMIT}s of pausing $owner"
((${#last[@]} == 1)) || die "expected exactly one MAC to answer ARP for $ip, got ${#last[@]}"
