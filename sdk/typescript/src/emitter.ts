// A minimal typed event emitter (no dependency, works everywhere).

type Handler<T> = (value: T) => void;

export class Emitter<Events extends object> {
  private readonly handlers = new Map<keyof Events, Set<Handler<never>>>();

  /** Subscribe; returns the function that unsubscribes. */
  on<K extends keyof Events>(event: K, handler: Handler<Events[K]>): () => void {
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler as Handler<never>);
    return () => this.off(event, handler);
  }

  off<K extends keyof Events>(event: K, handler: Handler<Events[K]>): void {
    this.handlers.get(event)?.delete(handler as Handler<never>);
  }

  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const handler of [...(this.handlers.get(event) ?? [])]) {
      try {
        (handler as Handler<Events[K]>)(value);
      } catch (error) {
        // One broken listener must not stop the others or the connection.
        setTimeout(() => {
          throw error;
        }, 0);
      }
    }
  }
}
