import express, {
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
  type Router,
} from 'express';
import { type z } from 'zod';
import type { Access, Scope } from './access.ts';
import { parseInput } from './query.ts';

export type Method = 'get' | 'post' | 'delete';

/** Request bodies are JSON, at most this large (413 beyond). */
export const BODY_LIMIT = '16kb';

/** One answer of an operation, for the OpenAPI description. */
export interface ResponseDoc {
  description: string;
  /** The body; JSON unless `contentType` says otherwise. None: the status has no body described. */
  schema?: z.ZodType;
  contentType?: 'application/json' | 'text/plain' | 'text/event-stream';
}

/** The audit target of a control request, from what the client sent (used when it is refused). */
export interface ControlTarget {
  node_id?: unknown;
  portfolio_id?: unknown;
  target_node_id?: unknown;
}

/**
 * A control request's route: its action, and where its target is in the request. Set before the
 * access check, so that a refusal at the gateway (403 scope, 400 invalid) can be audited by the
 * error handler, the one place that sees every refusal.
 */
export interface ControlMark {
  action: string;
  /** From the route's path parameters and the body (parsed or not, when the error came). */
  target: (input: { params: Record<string, string>; body: unknown }) => ControlTarget;
}

/** A control request's action and target, as the error handler reads them. */
export interface MarkedControl {
  action: string;
  target: () => ControlTarget;
}

/** The input of an operation that takes none. */
type Empty = z.ZodObject<Record<string, never>>;

/**
 * An operation: what it needs (scope) and takes (path parameters, query, body), and what it
 * answers. The schemas validate each request (400 naming the field) and are the OpenAPI
 * description; a response schema is the answer's contract, checked by the OpenAPI test.
 */
export interface Operation<
  Q extends z.ZodType = Empty,
  P extends z.ZodType = Empty,
  B extends z.ZodType = Empty,
> {
  summary: string;
  /** The scope it needs; `null`: open to anyone (health, readiness, this description). */
  scope: Scope | null;
  control?: ControlMark;
  params?: P;
  query?: Q;
  body?: B;
  /** Answers by status. 400 (when it takes input), 401, 403 and 429 (when scoped) are added. */
  responses: Record<number, ResponseDoc>;
}

export interface Input<Q extends z.ZodType, P extends z.ZodType, B extends z.ZodType> {
  query: z.output<Q>;
  params: z.output<P>;
  body: z.output<B>;
}

export type Handler<Q extends z.ZodType, P extends z.ZodType, B extends z.ZodType> = (
  input: Input<Q, P, B>,
  req: Request,
  res: Response,
) => Promise<void> | void;

/** An operation as served: method and express path (`/api/nodes/:id`). */
export interface ServedOperation {
  method: Method;
  path: string;
  operation: Operation<z.ZodType, z.ZodType, z.ZodType>;
}

const CONTROL = 'controlMark';

/** The control request this is, when its route is one. */
export function controlMarkOf(res: Response): MarkedControl | undefined {
  return res.locals[CONTROL] as MarkedControl | undefined;
}

/**
 * One resource's routes: each registered with its `Operation`, which guards it (`access.require`),
 * validates its input and describes it. The app mounts `router`; the OpenAPI description is made
 * from `operations`.
 */
export class ApiRouter {
  readonly router: Router = express.Router();
  readonly operations: ServedOperation[] = [];

  constructor(private readonly access: Access) {}

  get<Q extends z.ZodType = Empty, P extends z.ZodType = Empty, B extends z.ZodType = Empty>(
    path: string,
    operation: Operation<Q, P, B>,
    handler: Handler<Q, P, B>,
  ): this {
    return this.add('get', path, operation, handler);
  }

  post<Q extends z.ZodType = Empty, P extends z.ZodType = Empty, B extends z.ZodType = Empty>(
    path: string,
    operation: Operation<Q, P, B>,
    handler: Handler<Q, P, B>,
  ): this {
    return this.add('post', path, operation, handler);
  }

  delete<Q extends z.ZodType = Empty, P extends z.ZodType = Empty, B extends z.ZodType = Empty>(
    path: string,
    operation: Operation<Q, P, B>,
    handler: Handler<Q, P, B>,
  ): this {
    return this.add('delete', path, operation, handler);
  }

  private add<Q extends z.ZodType, P extends z.ZodType, B extends z.ZodType>(
    method: Method,
    path: string,
    operation: Operation<Q, P, B>,
    handler: Handler<Q, P, B>,
  ): this {
    this.operations.push({ method, path, operation });
    const chain: RequestHandler[] = [];
    const { control } = operation;
    if (control !== undefined)
      chain.push((req, res, next) => {
        // The route's parameters are gone once an error has left the router: keep them now.
        const params = { ...(req.params as Record<string, string>) };
        res.locals[CONTROL] = {
          action: control.action,
          target: () => control.target({ params, body: req.body as unknown }),
        } satisfies MarkedControl;
        next();
      });
    if (operation.scope !== null) chain.push(this.access.require(operation.scope));
    // Bodies are parsed only for a client that passed the access check, and only where one is taken.
    if (operation.body !== undefined) chain.push(express.json({ limit: BODY_LIMIT }));
    chain.push((req: Request, res: Response, next: NextFunction) => {
      let input: Input<Q, P, B>;
      try {
        input = {
          params: (operation.params === undefined
            ? {}
            : parseInput(operation.params, req.params, 'path')) as z.output<P>,
          query: (operation.query === undefined
            ? {}
            : parseInput(operation.query, req.query, 'query')) as z.output<Q>,
          body: (operation.body === undefined
            ? {}
            : parseInput(operation.body, req.body, 'body')) as z.output<B>,
        };
      } catch (err) {
        next(err);
        return;
      }
      Promise.resolve()
        .then(() => handler(input, req, res))
        .catch(next);
    });
    this.router[method](path, ...chain);
    return this;
  }
}
