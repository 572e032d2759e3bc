// Server-sent events from the console. EventSource reconnects by itself; on each
// (re)connection (`hello`) and when the console's feed comes back, every screen reloads,
// so what happened during a gap is not missed for long.

export function connect(handlers) {
  const source = new EventSource("/api/events");
  const parse = (event) => JSON.parse(event.data);
  source.addEventListener("hello", (event) => { handlers.status(parse(event).feed_live); handlers.resync(); });
  source.addEventListener("feed", (event) => {
    const { live } = parse(event);
    handlers.status(live);
    if (live) handlers.resync();
  });
  source.addEventListener("resync", () => handlers.resync());
  source.addEventListener("report", (event) => handlers.report(parse(event)));
  source.addEventListener("dispatch", (event) => handlers.dispatch(parse(event)));
  source.addEventListener("shift", (event) => handlers.shift(parse(event)));
  source.addEventListener("error", () => handlers.status(false));
  return source;
}
