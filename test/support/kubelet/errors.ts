/** The HTTP status of a client-node ApiException (undefined for other errors). */
export const statusOf = (e: unknown): number | undefined => (e as { code?: number }).code;
export const isNotFound = (e: unknown): boolean => statusOf(e) === 404;
export const isConflict = (e: unknown): boolean => statusOf(e) === 409;
