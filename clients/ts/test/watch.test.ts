// The watch's end on an expired cursor, without a server: npm test.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { create } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";

import { reasonOf } from "../src/errors";
import { ErrorReason } from "../src/gen/runstatus/v1/error_reason_pb";
import { EventSchema } from "../src/gen/runstatus/v1/event_pb";
import {
  WatchWorkOrdersResponseSchema,
  type WatchWorkOrdersRequest,
  type WorkOrderService,
} from "../src/gen/runstatus/v1/work_order_service_pb";
import { CursorExpiredError, watchWorkOrders } from "../src/watch";

/** The server's refusal of a cursor older than its pruned log, as it comes off the wire. */
function cursorExpired(oldest: string): ConnectError {
  const info = new BinaryWriter()
    .tag(1, WireType.LengthDelimited).string("CURSOR_EXPIRED")
    .tag(2, WireType.LengthDelimited).string("runstatus.v1")
    .tag(3, WireType.LengthDelimited).fork()
    .tag(1, WireType.LengthDelimited).string("oldest_cursor")
    .tag(2, WireType.LengthDelimited).string(oldest)
    .join()
    .finish();
  const status = new BinaryWriter();
  status.tag(1, WireType.Varint).int32(Code.OutOfRange);
  status.tag(2, WireType.LengthDelimited).string("cursor expired");
  status.tag(3, WireType.LengthDelimited).fork();
  status.tag(1, WireType.LengthDelimited).string("type.googleapis.com/google.rpc.ErrorInfo");
  status.tag(2, WireType.LengthDelimited).bytes(info);
  status.join();
  const err = findTrailerError(new Headers({
    "grpc-status": String(Code.OutOfRange),
    "grpc-message": "cursor expired",
    "grpc-status-details-bin": Buffer.from(status.finish()).toString("base64"),
  }));
  assert.ok(err instanceof ConnectError);
  return err;
}

/** A work order service whose every watch fails with `error`, counting the streams opened. */
function failingWatch(error: Error): { opened: number; client: Client<typeof WorkOrderService> } {
  const fake = {
    opened: 0,
    client: {
      watchWorkOrders: async function* () {
        fake.opened++;
        throw error;
      },
    } as unknown as Client<typeof WorkOrderService>,
  };
  return fake;
}

describe("watch", () => {
  it("ends with a CursorExpiredError, never reopened, when the cursor expired", async () => {
    const fake = failingWatch(cursorExpired("41"));
    await assert.rejects(
      async () => {
        for await (const _ of watchWorkOrders(fake.client, { afterCursor: "3" })) assert.fail("no event");
      },
      (e: unknown) => {
        assert.ok(e instanceof CursorExpiredError);
        assert.equal(e.oldestCursor, "41");
        assert.ok(e instanceof ConnectError, "still the server's ConnectError");
        assert.equal(e.code, Code.OutOfRange);
        assert.equal(reasonOf(e), ErrorReason.CURSOR_EXPIRED);
        return true;
      },
    );
    assert.equal(fake.opened, 1);
  });

  it("leaves other errors as they came", async () => {
    const denied = new ConnectError("no", Code.PermissionDenied);
    assert.ok(!(denied instanceof CursorExpiredError));
    await assert.rejects(async () => {
      for await (const _ of watchWorkOrders(failingWatch(denied).client, {})) assert.fail("no event");
    }, (e: unknown) => e === denied);
  });

  it("hands out a batch event by event, each with its own cursor, and resumes after the last handed out", async () => {
    const requests: WatchWorkOrdersRequest[] = [];
    const batch = (...sequences: number[]) => create(WatchWorkOrdersResponseSchema, {
      events: sequences.map((s) => create(EventSchema, { sequence: BigInt(s) })),
      cursor: String(sequences.at(-1)),
    });
    const client = {
      watchWorkOrders: async function* (request: WatchWorkOrdersRequest) {
        requests.push(request);
        if (requests.length === 1) {
          yield batch(1, 2);
          throw new ConnectError("restarting", Code.Unavailable);
        }
        yield batch(3, 4, 5);
      },
    } as unknown as Client<typeof WorkOrderService>;
    const got: string[] = [];
    for await (const { event, cursor } of watchWorkOrders(client, {}, { batch: 2, maxDelayMs: 50, delaysMs: [0] })) {
      assert.equal(cursor, String(event.sequence));
      got.push(cursor);
    }
    assert.deepEqual(got, ["1", "2", "3", "4", "5"]);
    assert.deepEqual(requests.map((r) => r.afterCursor), ["", "2"]);
    assert.equal(requests[0]?.batching?.maxEvents, 2);
    assert.equal(requests[0]?.batching?.maxDelay?.nanos, 50_000_000);
  });
});
