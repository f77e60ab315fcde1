/** Set `stop = true` (e.g. on SIGINT) to make a long loop (training, caching, attribution) stop at its next step boundary. */
export interface StopSignal {
  stop: boolean;
}
