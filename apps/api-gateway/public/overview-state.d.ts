// Types of overview-state.js for the gateway's tests (the page itself loads the .js only).
export declare class OverviewState {
  seq: number | null;
  apply(event: string, frame: unknown): boolean;
  overview():
    | (Record<string, unknown> & {
        seq: number;
        nodes: Record<string, unknown>[];
        portfolios: Record<string, unknown>[];
      })
    | undefined;
}
