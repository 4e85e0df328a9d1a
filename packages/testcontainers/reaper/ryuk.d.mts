/** Types of ryuk.mjs (a plain-JavaScript program, so that its image needs no build step). */
export function parseDuration(text: string | undefined, fallbackMs: number): number;
export function parseFilterLine(line: string): Record<string, string[]>;
type Filters = Record<string, string[]>;
export function dockerApi(dockerHost?: string): {
  ping(): Promise<{ status: number; body: string }>;
  containers(f: Filters): Promise<string[]>;
  networks(f: Filters): Promise<string[]>;
  volumes(f: Filters): Promise<string[]>;
  images(f: Filters): Promise<string[]>;
  remove(kind: 'containers' | 'networks' | 'volumes' | 'images', id: string): Promise<void>;
};
export interface ReaperOptions {
  port?: number;
  host?: string;
  connectionTimeoutMs?: number;
  reconnectionTimeoutMs?: number;
  removeRetries?: number;
  dockerHost?: string;
  self?: string;
  log?: (line: string) => void;
}
export interface Removed {
  containers: number;
  networks: number;
  volumes: number;
  images: number;
}
export function startReaper(o?: ReaperOptions): Promise<{
  port: number;
  done: Promise<Removed>;
  reap(): Promise<Removed>;
  close(): void;
}>;
