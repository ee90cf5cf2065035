#!/usr/bin/env python3
"""Measuring helpers for run.sh (standard library only, Python 3.8+).

  pool            stdin: `docker network inspect -f '{{json .IPAM.Config}}'`;
                  prints the last 16 addresses below the IPv4 broadcast as A-B
  owner           stdin: `kubectl get events -o json`; prints the node named
                  by the newest nodeAssigned Event
  first IP PORT   probes every 10 ms until the echo app answers; prints the
                  ms since --since-ns and the answering pod
  failover IP PORT -- CMD...
                  probes every 10 ms, runs CMD (the fault) after 1 s, keeps
                  probing until 1 s after the first answer to a request
                  sent once CMD has returned; prints: longest gap ms, fault
                  -> that answer ms, probes, failed probes, pod before, pod
                  after
  arp IP          (root or CAP_NET_RAW, on the same L2 segment) sends one
                  ARP who-has per second for --rounds seconds; prints the
                  MACs answering in each round, one line per round
"""
import argparse
import datetime
import ipaddress
import json
import re
import socket
import struct
import subprocess
import sys
import time

INTERVAL = 0.010


def get(ip, port, timeout):
    """One HTTP GET /hostname over a new connection: the pod's name or None.

    A whole request, not just connect(): the kernel of a paused (frozen)
    node still completes TCP handshakes for the frozen process.
    """
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    return body.decode().strip() if status[1:2] == [b"200"] else None


def pool(_args):
    subnets = [ipaddress.ip_network(c["Subnet"]) for c in json.load(sys.stdin) if c.get("Subnet")]
    v4 = [n for n in subnets if n.version == 4 and n.prefixlen <= 26]
    if not v4:
        sys.exit(f"no IPv4 subnet of /26 or larger on the network: {subnets}")
    top = v4[0].broadcast_address
    print(f"{top - 16}-{top - 1}")


def owner(_args):
    def when(e):
        stamps = [(e.get("series") or {}).get("lastObservedTime"), e.get("eventTime"),
                  e.get("lastTimestamp"), e["metadata"].get("creationTimestamp")]
        return max(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in stamps if t)

    events = [e for e in json.load(sys.stdin)["items"] if e.get("reason") == "nodeAssigned"]
    if events:
        match = re.search(r'from node "([^"]+)"', max(events, key=when).get("message", ""))
        print(match.group(1) if match else "")


def paced(limit):
    """Yields once per INTERVAL until `limit` seconds have passed."""
    start = time.monotonic()
    tick = start
    while time.monotonic() - start < limit:
        yield
        tick += INTERVAL
        time.sleep(max(0.0, tick - time.monotonic()))


def first(args):
    for _ in paced(args.limit):
        pod = get(args.ip, args.port, args.timeout)
        if pod:
            print(f"{(time.time_ns() - args.since_ns) / 1e6:.0f} {pod}")
            return
    sys.exit(f"no answer from {args.ip}:{args.port} within {args.limit} s")


def failover(args):
    answers = []  # (monotonic time, pod or None), one per probe
    start = time.monotonic()
    fault_at, fault, recovered, pod_after = None, None, None, "-"
    for _ in paced(args.limit + 2.0):
        now = time.monotonic()
        if fault is None and now - start >= 1.0:
            fault_at, fault = now, subprocess.Popen(args.cmd)
        # Only an answer to a request sent after the fault command returned
        # (the node is frozen by then) counts as the IP working again.
        done = fault is not None and fault.poll() is not None
        answers.append((now, get(args.ip, args.port, args.timeout)))
        if done and recovered is None and answers[-1][1]:
            recovered, pod_after = now, answers[-1][1]
        if recovered is not None and now - recovered >= 1.0:
            break
        if fault_at is not None and now - fault_at > args.limit:
            break
    if fault is None or fault.wait() != 0:
        sys.exit(f"fault command failed: {args.cmd}")
    ok = [(t, pod) for t, pod in answers if pod]
    # Longest time between two answers; unanswered to the end counts too.
    marks = [t for t, _ in ok] + ([] if recovered else [answers[-1][0]])
    gap = max((b - a for a, b in zip(marks, marks[1:])), default=0.0)
    before = [pod for t, pod in ok if t < fault_at] or ["-"]
    print(f"{gap * 1e3:.0f}", f"{(recovered - fault_at) * 1e3:.0f}" if recovered else "none",
          len(answers), len(answers) - len(ok), before[-1], pod_after)
    if recovered is None:
        sys.exit(f"no answer within {args.limit} s of the fault")


def arp(args):
    with open(f"/sys/class/net/{args.interface}/address") as f:
        mac = bytes.fromhex(f.read().strip().replace(":", ""))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.connect((args.ip, 9))  # no packet sent: only picks our source address
        src = socket.inet_aton(u.getsockname()[0])
    target = socket.inet_aton(args.ip)
    who_has = (b"\xff" * 6 + mac + b"\x08\x06"
               + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, src, b"\0" * 6, target))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)) as s:
        s.bind((args.interface, 0))
        for _ in range(args.rounds):
            s.send(who_has)
            macs, end = set(), time.monotonic() + 1.0
            while (left := end - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    frame = s.recv(128)
                except socket.timeout:
                    break
                if len(frame) < 42:
                    continue
                op, sha, spa = struct.unpack("!6xH6s4s", frame[14:32])
                if op == 2 and spa == target:
                    macs.add(sha.hex(":"))
            print(" ".join(sorted(macs)), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("pool").set_defaults(run=pool)
    sub.add_parser("owner").set_defaults(run=owner)
    for name, run in (("first", first), ("failover", failover)):
        q = sub.add_parser(name)
        q.add_argument("ip")
        q.add_argument("port", type=int)
        q.add_argument("--timeout", type=float, default=0.020, help="seconds per request")
        q.add_argument("--limit", type=float, default=60.0, help="seconds")
        q.set_defaults(run=run)
    sub.choices["first"].add_argument("--since-ns", type=int, default=time.time_ns())
    sub.choices["failover"].add_argument("cmd", nargs="+")
    q = sub.add_parser("arp")
    q.add_argument("ip")
    q.add_argument("--interface", default="eth0")
    q.add_argument("--rounds", type=int, default=1)
    q.set_defaults(run=arp)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
