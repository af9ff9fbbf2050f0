package dev.runstatus.client;

import io.grpc.StatusRuntimeException;

/**
 * How a {@link WorkOrderWatch} ends when its cursor is older than the oldest event the server
 * keeps (OUT_OF_RANGE, reason {@code CURSOR_EXPIRED}): the events after your cursor were pruned by
 * retention, so the watch cannot resume from it. Re-read what you need ({@code ListWorkOrders}),
 * then watch with {@code from_now}. It is the server's StatusRuntimeException still (its status,
 * trailers and {@link ErrorDetails}), so a catch of that sees it too.
 *
 * <pre>{@code
 * try (WorkOrderWatch watch = client.watch(request)) {
 *   while (watch.hasNext()) handle(watch.next());
 * } catch (CursorExpiredException expired) {
 *   reload(); // ListWorkOrders
 *   request = request.toBuilder().clearAfterCursor().setFromNow(true).build();
 * }
 * }</pre>
 */
public final class CursorExpiredException extends StatusRuntimeException {
  private static final long serialVersionUID = 1L;

  /** The ErrorInfo metadata key of the oldest cursor the server can still resume after. */
  static final String OLDEST_CURSOR = "oldest_cursor";

  /** See {@link #oldestCursor()}. */
  private final String oldestCursor;

  CursorExpiredException(StatusRuntimeException cause) {
    super(cause.getStatus().withCause(cause), cause.getTrailers()); // the status's cause is this one's
    this.oldestCursor = ErrorDetails.metadata(cause, OLDEST_CURSOR).orElse("");
  }

  /**
   * The oldest cursor a watch can still resume after (the ErrorInfo metadata "oldest_cursor").
   *
   * @return the cursor, or "" if the server gave none
   */
  public String oldestCursor() {
    return oldestCursor;
  }
}
