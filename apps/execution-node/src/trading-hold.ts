/** One halt or pause record as a node reads it (`readControlRecord` in @ginkgo-live/fleet). */
export interface SeenRecord {
  id: string;
  /** A lift (state lifted or resumed) of the record with this id. */
  lifted: boolean;
  /** Who and why, for the log (null when unreadable). */
  by: string | null;
  reason: string | null;
}

/** The trading controls as one read found them: the halt record and each portfolio's record. */
export interface TradingControlsSeen {
  /** null: no halt record at all (never halted — or Redis lost it). */
  halt: SeenRecord | null;
  pauses: ReadonlyMap<string, SeenRecord>;
}

/** What a node holds: the halt it saw (by id) and the pauses it saw (portfolio → id). */
export interface Holds {
  halt: { id: string; by: string | null; reason: string | null } | null;
  paused: ReadonlyMap<string, string>;
}

/** Holds Redis no longer shows: the halt's id and the paused portfolios kept regardless. */
export interface MissingHolds {
  halt: string | null;
  paused: string[];
}

export const NO_HOLDS: Holds = { halt: null, paused: new Map() };

/**
 * The holds after a reading. A lift is explicit: only the lift of the very record held (same id)
 * ends a hold, and a newer record (another id, not a lift) replaces it. A missing record, or a
 * lift of another id, leaves the hold in place and reports it missing — Redis that restarted
 * empty, or a replica promoted without the write, must not resume trading by forgetting. A process
 * that never saw a hold has nothing to keep: missing is trading.
 */
export function settleHolds(
  held: Holds,
  seen: TradingControlsSeen,
): { holds: Holds; missing: MissingHolds } {
  let halt = held.halt;
  let missingHalt: string | null = null;
  const record = seen.halt;
  if (record !== null && !record.lifted) {
    halt = { id: record.id, by: record.by, reason: record.reason };
  } else if (halt !== null && (record === null || record.id !== halt.id)) {
    missingHalt = halt.id;
  } else {
    halt = null;
  }
  const paused = new Map<string, string>();
  const missingPaused: string[] = [];
  for (const [portfolioId, pause] of seen.pauses) {
    if (!pause.lifted) paused.set(portfolioId, pause.id);
  }
  for (const [portfolioId, id] of held.paused) {
    const pause = seen.pauses.get(portfolioId);
    if (pause === undefined || (pause.lifted && pause.id !== id)) {
      paused.set(portfolioId, id);
      missingPaused.push(portfolioId);
    }
  }
  return {
    holds: { halt, paused },
    missing: { halt: missingHalt, paused: missingPaused.sort() },
  };
}
