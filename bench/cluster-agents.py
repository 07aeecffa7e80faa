#!/usr/bin/env python3
"""Simulated cluster agents for bench/cluster: light clients that join a manager and heartbeat
over real mutual-TLS gRPC, as atolld's Agent does, without running an engine each.

 1. Join: N agents, each with its own P-256 key and CSR, call CA.IssueNodeCertificate with the
    worker token while presenting a throwaway self-signed certificate (at most --join-concurrency
    at a time).
 2. Heartbeat: every agent opens its own mTLS channel with its node certificate and calls
    Dispatcher.Heartbeat (the session's first call carries its description), then sleeps the
    period the manager answers with, like the real agent. Starts are spread over one period.
    After all have made their first heartbeat and a warm-up, a steady window of --duration
    seconds: heartbeat latencies, and the manager's CPU (utime+stime of /proc/PID/stat) and RSS
    when --manager-pid is given.
 3. Down detection (--kill K): K agents stop at once (task cancelled, channel closed); Control.
    ListNodes (admin bundle) is polled until the manager lists all K as down.

Prints a JSON summary on stdout (and into --json FILE). Needs grpcio, grpcio-tools and
cryptography; the Python stubs are generated from the repository's proto into a temp dir.
"""
import argparse
import asyncio
import datetime
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO = "atoll/cluster/v1/cluster.proto"


def load_stubs(proto_root):
    """Generates cluster_pb2/cluster_pb2_grpc with grpcio-tools' protoc and imports them."""
    import grpc_tools
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="atoll-cluster-stubs.")
    try:
        include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        rc = protoc.main(["grpc_tools.protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={out}",
                          f"--grpc_python_out={out}", os.path.join(proto_root, PROTO)])
        if rc != 0:
            sys.exit(f"cluster-agents: protoc failed on {PROTO} ({rc})")
        sys.path.insert(0, out)
        from atoll.cluster.v1 import cluster_pb2, cluster_pb2_grpc  # noqa: E402
        return cluster_pb2, cluster_pb2_grpc
    finally:
        shutil.rmtree(out, ignore_errors=True)  # the modules are loaded: the files are not needed


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summary_ms(seconds):
    values = sorted(seconds)
    if not values:
        return None
    return {"p50": round(percentile(values, 50) * 1e3, 3), "p90": round(percentile(values, 90) * 1e3, 3),
            "p99": round(percentile(values, 99) * 1e3, 3), "max": round(values[-1] * 1e3, 3),
            "mean": round(sum(values) / len(values) * 1e3, 3)}


class Process:
    """CPU and memory of a process from /proc."""

    tick = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid):
        self.pid = pid

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime, stime (fields 14, 15)

    def status_kib(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None


def pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def channel(address, ca_pem, key_pem, cert_pem):
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem,
                                               certificate_chain=cert_pem)
    # A subchannel (connection) of its own: gRPC would otherwise share one between channels to
    # the same target, and N agents must be N connections, as N hosts would be.
    return grpc.aio.secure_channel(address, credentials, options=[("grpc.use_local_subchannel_pool", 1)])


class Agent:
    def __init__(self, index, pb):
        self.index = index
        self.hostname = f"bench-agent-{index:04d}"
        self.pb = pb
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.key_pem = pem_key(self.key)
        self.node_id = None
        self.cert_pem = None
        self.channel = None
        self.task = None
        self.first_beat = None  # monotonic time of the first successful heartbeat
        self.last_beat = None   # monotonic time the last successful heartbeat was sent

    def description(self):
        return self.pb.NodeDescription(hostname=self.hostname, engine_version="bench-agent", os="linux",
                                       architecture="x86_64", cpus=1, memory_bytes=1 << 30)

    def join_material(self):
        """The CSR, and the throwaway self-signed certificate shown while joining."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.hostname)])
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(self.key, hashes.SHA256())
        now = datetime.datetime.now(datetime.timezone.utc)
        throwaway = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(hours=1)).sign(self.key, hashes.SHA256()))
        return (csr.public_bytes(serialization.Encoding.PEM).decode(),
                throwaway.public_bytes(serialization.Encoding.PEM))

    async def join(self, args, ca_pem, stubs):
        csr_pem, throwaway_pem = self.join_material()
        async with channel(args.manager, ca_pem, self.key_pem, throwaway_pem) as ch:
            response = await stubs.CAStub(ch).IssueNodeCertificate(
                self.pb.IssueNodeCertificateRequest(token=args.token, csr_pem=csr_pem,
                                                    description=self.description()),
                timeout=60)
        self.node_id = response.node_id
        self.cert_pem = response.certificate_pem.encode()

    async def heartbeats(self, bench, start_delay):
        await asyncio.sleep(start_delay)
        self.channel = channel(bench.args.manager, bench.ca_pem, self.key_pem, self.cert_pem)
        dispatcher = bench.stubs.DispatcherStub(self.channel)
        request = self.pb.HeartbeatRequest(description=self.description())
        while True:
            sent = time.monotonic()
            try:
                response = await dispatcher.Heartbeat(request, timeout=10)
            except grpc.aio.AioRpcError as error:
                bench.heartbeat_error(error.code().name, sent)
                await asyncio.sleep(1)
                continue
            done = time.monotonic()
            bench.heartbeat(sent, done - sent)
            if self.first_beat is None:
                self.first_beat = done
                bench.first_beats += 1
            self.last_beat = sent
            request = self.pb.HeartbeatRequest()
            await asyncio.sleep(max(0.1, response.period_ms / 1000))

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        if self.channel is not None:
            await self.channel.close()


class Bench:
    def __init__(self, args, pb, stubs):
        self.args, self.pb, self.stubs = args, pb, stubs
        with open(args.ca, "rb") as f:
            self.ca_pem = f.read()
        self.latencies = []   # (sent monotonic, seconds)
        self.errors = []      # (sent monotonic, code name)
        self.first_beats = 0
        self.manager = Process(args.manager_pid) if args.manager_pid else None

    def heartbeat(self, sent, seconds):
        self.latencies.append((sent, seconds))

    def heartbeat_error(self, code, sent):
        self.errors.append((sent, code))

    def admin_channel(self):
        read = lambda name: open(os.path.join(self.args.admin_dir, name), "rb").read()  # noqa: E731
        return channel(self.args.manager, read("ca.pem"), read("key.pem"), read("cert.pem"))

    async def join_all(self, agents):
        gate = asyncio.Semaphore(self.args.join_concurrency)
        latencies, errors = [], {}

        async def one(agent):
            async with gate:
                start = time.monotonic()
                try:
                    await agent.join(self.args, self.ca_pem, self.stubs)
                    latencies.append(time.monotonic() - start)
                except grpc.aio.AioRpcError as error:
                    key = f"{error.code().name}: {error.details()}"
                    errors[key] = errors.get(key, 0) + 1

        start = time.monotonic()
        await asyncio.gather(*(one(agent) for agent in agents))
        seconds = time.monotonic() - start
        return {"joined": len(latencies), "seconds": round(seconds, 3),
                "per_second": round(len(latencies) / seconds, 1) if seconds > 0 else None,
                "latency_ms": summary_ms(latencies), "errors": errors}

    async def wait_down(self, victims):
        """Stops the victims at once; seconds until the manager lists each as down."""
        pending = {agent.node_id: agent for agent in victims}
        down_at = {}
        async with self.admin_channel() as admin:
            control = self.stubs.ControlStub(admin)
            await control.ListNodes(self.pb.ListNodesRequest(filters=["state=down"]), timeout=10)  # connected
            stopped = time.monotonic()
            await asyncio.gather(*(agent.stop() for agent in victims))
            deadline = stopped + self.args.down_timeout
            while pending and time.monotonic() < deadline:
                response = await control.ListNodes(self.pb.ListNodesRequest(filters=["state=down"]), timeout=10)
                now = time.monotonic()
                for node in response.nodes:
                    if node.id in pending:
                        down_at[node.id] = (now, pending.pop(node.id))
                await asyncio.sleep(self.args.poll_interval)
        since_stop = sorted(now - stopped for now, _ in down_at.values())
        since_beat = sorted(now - agent.last_beat for now, agent in down_at.values())
        r = lambda v: round(v, 2) if v is not None else None  # noqa: E731
        return {"killed": len(victims), "down": len(down_at), "not_down": len(pending),
                "all_down_s": r(since_stop[-1]) if not pending and since_stop else None,
                "first_down_s": r(since_stop[0]) if since_stop else None,
                "since_last_heartbeat_s": {"min": r(since_beat[0]), "p50": r(percentile(since_beat, 50)),
                                           "max": r(since_beat[-1])} if since_beat else None,
                "poll_interval_s": self.args.poll_interval}

    async def cluster_period(self):
        async with self.admin_channel() as admin:
            info = await self.stubs.ControlStub(admin).ClusterInfo(self.pb.ClusterInfoRequest(), timeout=10)
        return info.heartbeat_period_seconds or 5.0

    async def count_ready(self, agents):
        async with self.admin_channel() as admin:
            response = await self.stubs.ControlStub(admin).ListNodes(self.pb.ListNodesRequest(), timeout=30)
        ids = {agent.node_id for agent in agents}
        states = {}
        for node in response.nodes:
            if node.id in ids:
                states[node.state] = states.get(node.state, 0) + 1
        return states

    async def run(self):
        args = self.args
        result = {"agents": args.agents, "manager_addr": args.manager}
        if self.manager:  # the manager with no agents: its own node and its health loop
            rss_before = self.manager.status_kib("VmRSS")
            cpu_idle = self.manager.cpu_seconds()
            await asyncio.sleep(args.idle)
            cpu_idle = (self.manager.cpu_seconds() - cpu_idle) / args.idle
        agents = [Agent(i, self.pb) for i in range(args.agents)]

        # 1. Joins
        joins = await self.join_all(agents)
        result["join"] = joins
        agents = [agent for agent in agents if agent.node_id]
        if not agents:
            raise SystemExit(f"cluster-agents: no agent joined: {joins['errors']}")

        # 2. Heartbeats: starts spread over one period; steady window after all have beaten once
        # and a warm-up.
        period = args.period or await self.cluster_period()
        for agent in agents:
            agent.task = asyncio.create_task(agent.heartbeats(self, random.uniform(0, period)))
        ramp_deadline = time.monotonic() + period + 60
        while self.first_beats < len(agents) and time.monotonic() < ramp_deadline:
            await asyncio.sleep(0.1)
        result["sessions_started"] = self.first_beats
        await asyncio.sleep(args.warmup)

        steady_start = time.monotonic()
        cpu_client_start = resource.getrusage(resource.RUSAGE_SELF)
        if self.manager:
            cpu_start = self.manager.cpu_seconds()
        rss_peak = 0
        while time.monotonic() < steady_start + args.duration:
            await asyncio.sleep(min(1.0, max(0.0, steady_start + args.duration - time.monotonic())))
            if self.manager:
                rss_peak = max(rss_peak, self.manager.status_kib("VmRSS"))
        steady_end = time.monotonic()
        window = steady_end - steady_start
        cpu_client_end = resource.getrusage(resource.RUSAGE_SELF)
        if self.manager:
            cpu_end = self.manager.cpu_seconds()
            result["manager"] = {
                "pid": args.manager_pid,
                "cpu_percent_steady": round((cpu_end - cpu_start) / window * 100, 2),
                "cpu_percent_idle": round(cpu_idle * 100, 2),
                "idle_seconds": args.idle,
                "rss_mib_before_joins": round(rss_before / 1024, 1),
                "rss_mib_steady": round(self.manager.status_kib("VmRSS") / 1024, 1),
                "rss_mib_steady_peak": round(rss_peak / 1024, 1),
                "hwm_mib": round(self.manager.status_kib("VmHWM") / 1024, 1),
            }
        client_cpu = (cpu_client_end.ru_utime + cpu_client_end.ru_stime
                      - cpu_client_start.ru_utime - cpu_client_start.ru_stime)
        result["client_cpu_percent_steady"] = round(client_cpu / window * 100, 2)

        steady = [seconds for sent, seconds in self.latencies if steady_start <= sent < steady_end]
        steady_errors = {}
        for sent, code in self.errors:
            if steady_start <= sent < steady_end:
                steady_errors[code] = steady_errors.get(code, 0) + 1
        all_errors = {}
        for _, code in self.errors:
            all_errors[code] = all_errors.get(code, 0) + 1
        result["heartbeat"] = {
            "period_s": period, "steady_seconds": round(window, 2), "count": len(steady),
            "per_second": round(len(steady) / window, 1), "expected_per_second": round(len(agents) / period, 1),
            "latency_ms": summary_ms(steady), "errors": steady_errors,
            "count_total": len(self.latencies), "errors_total": all_errors,
        }
        result["nodes_by_state"] = await self.count_ready(agents)

        # 3. Down detection
        if args.kill > 0:
            victims = agents[:args.kill]
            result["down_detection"] = await self.wait_down(victims)

        await asyncio.gather(*(agent.stop() for agent in agents if agent.task and not agent.task.done()))
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manager", required=True, help="the manager's IP:PORT")
    parser.add_argument("--ca", required=True, help="the cluster CA certificate (PEM)")
    parser.add_argument("--token", required=True, help="the worker join token")
    parser.add_argument("--admin-dir", required=True,
                        help="the admin bundle (ca.pem, cert.pem, key.pem) for Control calls")
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--duration", type=float, default=60, help="seconds of the steady heartbeat window")
    parser.add_argument("--warmup", type=float, default=5,
                        help="seconds between every agent's first heartbeat and the steady window")
    parser.add_argument("--period", type=float,
                        help="the heartbeat period in seconds, for spreading starts (default: the cluster's, "
                             "from Control.ClusterInfo); agents sleep whatever each heartbeat answers")
    parser.add_argument("--idle", type=float, default=5,
                        help="seconds the manager's CPU is measured with no agents, before the joins")
    parser.add_argument("--kill", type=int, default=0, help="agents to stop at once after the window (0: none)")
    parser.add_argument("--down-timeout", type=float, default=60)
    parser.add_argument("--poll-interval", type=float, default=0.1)
    parser.add_argument("--join-concurrency", type=int, default=16)
    parser.add_argument("--manager-pid", type=int, help="measure this process's CPU and RSS")
    parser.add_argument("--proto-root", default=os.path.join(REPO, "proto"))
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args()
    args.kill = min(args.kill, args.agents)

    pb, stubs = load_stubs(args.proto_root)
    result = asyncio.run(Bench(args, pb, stubs).run())
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
