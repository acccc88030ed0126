// src/grpc/pipeline.ts CallEnding: a call's end as an AbortSignal, made only when a handler asks.
import { CallEnding } from '../../src/grpc/pipeline.js';

describe('CallEnding', () => {
  test('a signal asked for during the call aborts when the call ends, once', () => {
    const ending = new CallEnding();
    const signal = ending.signal;
    let aborts = 0;
    signal.addEventListener('abort', () => aborts++);
    expect(signal.aborted).toBe(false);
    ending.end();
    ending.end();
    expect(signal.aborted).toBe(true);
    expect(aborts).toBe(1);
  });

  test('a signal first asked for after the end is already aborted', () => {
    const ending = new CallEnding();
    ending.end();
    expect(ending.signal.aborted).toBe(true);
  });

  test('the same signal every time it is asked for', () => {
    const ending = new CallEnding();
    expect(ending.signal).toBe(ending.signal);
  });
});
