"""Opens N keep-alive connections to a proxy on loopback, sends one GET on each and reads its answer,
leaves them all open and idle, and prints the resident memory of process PID before and after.
Usage: python3 bench/idle_conns.py PORT N PID"""
import asyncio
import sys


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def main(port, count, pid):
    before = rss_kib(pid)
    connections = []
    batch = 250
    for start in range(0, count, batch):
        opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(min(batch, count - start))]
        for _, writer in opened:
            writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        # Each answer's first bytes: the request was served and the connection is idle again.
        await asyncio.wait_for(asyncio.gather(*(reader.readuntil(b"\r\n\r\n") for reader, _ in opened)), 30)
        connections += opened
    await asyncio.sleep(2)
    after = rss_kib(pid)
    open_now = sum(1 for _, writer in connections if not writer.is_closing())
    print(f"{open_now} idle connections: RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB with them "
          f"({(after - before) / open_now:.2f} KiB each)")
    for _, writer in connections:
        writer.close()


asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
