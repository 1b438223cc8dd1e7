"""A shelving PLC played by pymodbus (a Modbus stack nobody here wrote), for tests/pymodbus.rs.

Modbus TCP on 127.0.0.1:PORT, unit 1, with the register map of vendor-modbus-shelving.toml:
positions at input registers 0.., the status block at 100, occupancy at 300; command at
holding register 10, its argument at 12, heartbeat at 14. Five carriages of 600 mm, both ends
fixed, aisles 900 mm. A command written to register 10 is acted on at the PLC's next scan,
50 ms later: the command counter (107) counts it, the last result (104) says 0, and an
opening moves the carriages at 1 m/s. Prints "listening" once it serves.
"""

import asyncio
import sys

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.server import StartAsyncTcpServer

N, WIDTH, AISLE, SPEED = 5, 600, 900, 1000.0
RAIL = N * WIDTH + AISLE
SCAN = 0.05


def packed(k):
    """Carriages 1..k against the left end, the rest against the right."""
    pos = [0.0] * N
    x = 0.0
    for i in range(k):
        pos[i] = x
        x += WIDTH
    x = RAIL
    for i in reversed(range(k, N)):
        x -= WIDTH
        pos[i] = x
    return pos


class Plc:
    def __init__(self):
        self.pos = packed(1)
        self.target = None
        self.counter = 0
        self.result = 0
        self.argument = 0
        self.pending = []

    def command(self, code):
        self.pending.append((asyncio.get_running_loop().time() + SCAN, code, self.argument))

    def act(self, code, argument):
        self.counter = (self.counter + 1) & 0xFFFF
        self.result = 0
        if code == 1 and 1 <= argument < N:
            self.target = packed(argument)
        elif code == 2:
            self.target = packed(N)
        elif code == 4:
            self.target = None
        elif code not in (3, 5, 6, 7):
            self.result = 6


class Holding(ModbusSequentialDataBlock):
    def __init__(self, plc):
        super().__init__(0, [0] * 32)
        self.plc = plc

    def setValues(self, address, values):
        super().setValues(address, values)
        for i, v in enumerate(values if isinstance(values, list) else [values]):
            if address + i == 12:
                self.plc.argument = v
            elif address + i == 10:
                self.plc.command(v)


async def run(port):
    plc = Plc()
    inputs = ModbusSequentialDataBlock(0, [0] * 400)
    context = ModbusServerContext(
        slaves={1: ModbusSlaveContext(ir=inputs, hr=Holding(plc), zero_mode=True)},
        single=False,
    )

    async def scan():
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            while plc.pending and plc.pending[0][0] <= now:
                _, code, argument = plc.pending.pop(0)
                plc.act(code, argument)
            moving = False
            if plc.target is not None:
                for i in range(N):
                    d = plc.target[i] - plc.pos[i]
                    step = SPEED * 0.02
                    if abs(d) <= step:
                        plc.pos[i] = plc.target[i]
                    else:
                        plc.pos[i] += step if d > 0 else -step
                        moving = True
                if not moving:
                    plc.target = None
            open_aisle = 0
            for k in range(1, N):
                if plc.pos[k] - (plc.pos[k - 1] + WIDTH) >= AISLE - 5:
                    open_aisle = k
            inputs.setValues(0, [int(round(p)) for p in plc.pos])
            inputs.setValues(100, [1 if moving else 0, 0 if moving else open_aisle, 0, 0, plc.result, N, 0, plc.counter])
            inputs.setValues(300, [0, 0])
            await asyncio.sleep(0.02)

    asyncio.get_running_loop().create_task(scan())
    print("listening", flush=True)
    await StartAsyncTcpServer(context=context, address=("127.0.0.1", port))


if __name__ == "__main__":
    asyncio.run(run(int(sys.argv[1])))
