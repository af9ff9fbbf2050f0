package dev.runstatus.client;

import com.google.protobuf.Duration;
import dev.runstatus.v1.ErrorReason;
import dev.runstatus.v1.Event;
import dev.runstatus.v1.WatchBatching;
import dev.runstatus.v1.WatchWorkOrdersRequest;
import dev.runstatus.v1.WatchWorkOrdersResponse;
import dev.runstatus.v1.WorkOrderServiceGrpc;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Set;

/**
 * A watch of work order events ({@code WatchWorkOrders}) that reopens the stream after the last
 * cursor it received when the connection breaks (UNAVAILABLE, CANCELLED or INTERNAL: a server
 * restart, a proxy, a lost network), so across a disconnect no event is lost or repeated. Made by
 * {@link RunstatusClient#watch}.
 *
 * <pre>{@code
 * try (WorkOrderWatch watch = client.watch(WatchWorkOrdersRequest.newBuilder().setProjectId("p").build())) {
 *   while (watch.hasNext()) {
 *     WatchWorkOrdersResponse item = watch.next();
 *     System.out.println(item.getEvent().getStatus() + " after " + item.getCursor());
 *   }
 * }
 * }</pre>
 *
 * <p>{@link #hasNext} blocks until an event arrives; it is false once the watch is closed (from any
 * thread) or the server ended the stream. A cursor older than the event log the server keeps ends
 * it with a {@link CursorExpiredException}: the events after it were pruned by retention; re-read
 * what you need ({@code ListWorkOrders}), then watch with {@code from_now}. Any other failure is
 * thrown as the StatusRuntimeException it was. The stream has no deadline, whatever the client's
 * default.
 *
 * <p>With {@code batching} in the request ({@link #batching}) the server sends up to {@code
 * max_events} events per message, holding one back at most {@code max_delay} for company: far
 * cheaper for it when many watch a busy project. The watch still hands them out one by one, each
 * as an answer of its own with its event and the cursor to resume after it (its sequence), so the
 * loop above reads the same either way; the {@link #cursor} moves per event as it is handed out,
 * and a reopened stream resumes after the last one.
 */
public final class WorkOrderWatch implements Iterator<WatchWorkOrdersResponse>, AutoCloseable {
  /** A stream that ends with these codes resumes from its cursor. */
  static final Set<Status.Code> RECONNECT_CODES =
      Set.of(Status.Code.UNAVAILABLE, Status.Code.CANCELLED, Status.Code.INTERNAL);
  /** Waits between attempts to reopen, in milliseconds; the last one repeats (as Python's). */
  static final long[] RECONNECT_DELAYS_MS = {100, 200, 500, 1000, 2000};

  private final RunstatusClient client;
  private final WatchWorkOrdersRequest request;
  private final boolean reconnect;
  private final WorkOrderServiceGrpc.WorkOrderServiceBlockingStub stub;
  private volatile boolean closed;
  private Context.CancellableContext context;
  private Iterator<WatchWorkOrdersResponse> stream;
  private WatchWorkOrdersResponse next;
  /** The rest of a batched answer's events, each as an answer of its own, not yet handed out. */
  private final ArrayDeque<WatchWorkOrdersResponse> pending = new ArrayDeque<>();
  private String cursor;
  private int failures;
  private int reconnects;

  WorkOrderWatch(RunstatusClient client, WatchWorkOrdersRequest request, boolean reconnect) {
    this.client = client;
    this.request = request;
    this.reconnect = reconnect;
    this.stub = WorkOrderServiceGrpc.newBlockingStub(client.interceptedChannel());
    this.cursor = request.getAfterCursor();
  }

  /**
   * The batching that asks the server for up to {@code maxEvents} events per message (1 to 1000),
   * an event held back at most {@code maxDelay} (0 to 1 s) for company: {@code
   * WatchWorkOrdersRequest.newBuilder().setBatching(WorkOrderWatch.batching(100,
   * Duration.ofMillis(100)))}. The watch hands the events out one by one all the same.
   *
   * @param maxEvents the most events per message
   * @param maxDelay the longest an event waits for company
   * @return the request's {@code batching}
   */
  public static WatchBatching batching(int maxEvents, java.time.Duration maxDelay) {
    return WatchBatching.newBuilder()
        .setMaxEvents(maxEvents)
        .setMaxDelay(
            Duration.newBuilder().setSeconds(maxDelay.getSeconds()).setNanos(maxDelay.getNano()))
        .build();
  }

  /**
   * The cursor of the last event received (the request's {@code after_cursor} before any): pass
   * it as {@code after_cursor} to resume after it elsewhere.
   *
   * @return the cursor
   */
  public synchronized String cursor() {
    return cursor;
  }

  /**
   * How many times the stream was reopened after a break.
   *
   * @return the number of reconnects
   */
  public synchronized int reconnects() {
    return reconnects;
  }

  /**
   * Waits for the next event; reopens the stream from the cursor after a break.
   *
   * @return true when an event is there for {@link #next}; false once closed or ended
   * @throws CursorExpiredException if the cursor is older than the log the server keeps
   * @throws StatusRuntimeException a failure the watch does not resume after (e.g.
   *     PERMISSION_DENIED), or CANCELLED if the waiting thread was interrupted
   */
  @Override
  public boolean hasNext() {
    while (true) {
      Iterator<WatchWorkOrdersResponse> open;
      synchronized (this) {
        if (next != null) {
          return true;
        }
        if (closed) {
          return false;
        }
        if (!pending.isEmpty()) {
          handOut(pending.poll());
          return true;
        }
        if (stream == null) {
          open();
        }
        open = stream;
      }
      try {
        if (!open.hasNext()) {
          return false; // the server ended the stream
        }
        WatchWorkOrdersResponse item = open.next();
        synchronized (this) {
          failures = 0;
          if (item.getEventsCount() == 0) {
            handOut(item);
          } else {
            // A batch: each event on its own, with its own cursor.
            for (Event event : item.getEventsList()) {
              pending.add(
                  WatchWorkOrdersResponse.newBuilder()
                      .setEvent(event)
                      .setCursor(Long.toString(event.getSequence()))
                      .build());
            }
            handOut(pending.poll());
          }
        }
        return true;
      } catch (StatusRuntimeException e) {
        long delay;
        synchronized (this) {
          drop();
          if (closed) {
            return false;
          }
          delay = backoff(e);
          reconnects++;
        }
        sleep(delay);
        // Reconnect now rather than at the end of gRPC's backoff (up to two minutes).
        client.channel().resetConnectBackoff();
      }
    }
  }

  /**
   * The next event and its cursor.
   *
   * @return the stream's next answer
   * @throws NoSuchElementException if there is none ({@link #hasNext} is false)
   */
  @Override
  public WatchWorkOrdersResponse next() {
    // Not under the lock while waiting: close() from another thread must get in.
    if (!hasNext()) {
      throw new NoSuchElementException("the watch is closed");
    }
    synchronized (this) {
      WatchWorkOrdersResponse item = next;
      next = null;
      return item;
    }
  }

  /** Cancels the stream; a {@link #hasNext} waiting in another thread returns false. */
  @Override
  public void close() {
    closed = true;
    Context.CancellableContext open;
    synchronized (this) {
      open = context;
    }
    if (open != null) {
      open.cancel(null);
    }
  }

  private void handOut(WatchWorkOrdersResponse item) {
    next = item;
    cursor = item.getCursor();
  }

  private void open() {
    WatchWorkOrdersRequest.Builder resume = request.toBuilder();
    if (!cursor.isEmpty()) {
      // After an event, resume after it: from_now would skip what came meanwhile.
      resume.setAfterCursor(cursor).setFromNow(false);
    }
    WatchWorkOrdersRequest opened = resume.build();
    // The blocking stub's stream is cancelled through its context: close() cancels it.
    context = Context.current().withCancellation();
    Context previous = context.attach();
    try {
      stream = stub.watchWorkOrders(opened);
    } finally {
      context.detach(previous);
    }
  }

  private void drop() {
    if (context != null) {
      context.cancel(null);
    }
    context = null;
    stream = null;
  }

  /** The milliseconds to wait before reopening, or the failure itself if it is not one to resume. */
  private long backoff(StatusRuntimeException e) {
    // The events after the cursor are gone: never resumed past, whatever `reconnect` says.
    if (ErrorDetails.reasonOf(e) == ErrorReason.ERROR_REASON_CURSOR_EXPIRED) {
      throw new CursorExpiredException(e);
    }
    // A watch cut off for reading too slowly resumes at once: its backlog comes from the log.
    if (reconnect && ErrorDetails.reasonOf(e) == ErrorReason.ERROR_REASON_WATCH_TOO_SLOW) {
      return 0;
    }
    if (!reconnect || !RECONNECT_CODES.contains(e.getStatus().getCode())) {
      throw e;
    }
    long delay = RECONNECT_DELAYS_MS[Math.min(failures, RECONNECT_DELAYS_MS.length - 1)];
    failures++;
    return delay;
  }

  private void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException interrupted) {
      Thread.currentThread().interrupt();
      close();
      throw Status.CANCELLED.withDescription("interrupted while waiting to reconnect").asRuntimeException();
    }
  }
}
