// An application on a volume, for the partition test: appends numbered 64-byte records to one file,
// and notes in a progress file (on local disk) what it was told: "d FROM TO" once an fsync returned
// OK for records FROM..TO (durable), "e N CODE" for an error at record N. Modes:
//   fsync5  buffered writes, fsync every 5 records; stops at the first error (as most programs do)
//   reopen  the same, but after an error it closes, reopens the file and goes on (a stubborn logger)
//   fsync1  fsync after every record, then exit after COUNT records (the new node's writer)
// Usage: node writer.js FILE WHO MODE COUNT PROGRESS   (COUNT 0: until killed)
import { appendFileSync, closeSync, fsyncSync, openSync, writeSync } from 'node:fs';

const [file, who, mode, countArg, progress] = process.argv.slice(2) as [string, string, string, string, string];
const count = Number(countArg);
const pause = new Int32Array(new SharedArrayBuffer(4));
const note = (line: string) => appendFileSync(progress, `${line}\n`);

const record = (seq: number) => `${who} ${String(seq).padStart(8, '0')} `.padEnd(63, '.') + '\n';

let fd = openSync(file, 'a');
/** The first record written on this descriptor that no successful fsync covers yet. */
let pendingFrom = 1;
for (let seq = 1; count === 0 || seq <= count; seq++) {
  try {
    writeSync(fd, record(seq));
    if (mode === 'fsync1' || seq % 5 === 0) {
      fsyncSync(fd);
      note(`d ${pendingFrom} ${seq}`);
      pendingFrom = seq + 1;
    }
  } catch (err) {
    pendingFrom = seq + 1; // what was written before on this descriptor may or may not be on the server
    note(`e ${seq} ${(err as NodeJS.ErrnoException).code ?? 'ERROR'}`);
    if (mode !== 'reopen') process.exit(1);
    try {
      closeSync(fd);
    } catch {
      // the old descriptor is dead anyway
    }
    for (;;) {
      try {
        fd = openSync(file, 'a');
        break;
      } catch (e) {
        note(`e ${seq} reopen-${(e as NodeJS.ErrnoException).code ?? 'ERROR'}`);
        Atomics.wait(pause, 0, 0, 200);
      }
    }
  }
  Atomics.wait(pause, 0, 0, 5);
}
closeSync(fd);
