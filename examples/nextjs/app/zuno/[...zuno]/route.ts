import { handler } from '../../../lib/zuno-server'

// Zuno's stream and its state live in this process's memory: not the Edge runtime, never cached.
export const runtime = 'nodejs'
export const dynamic = 'force-dynamic'

export const GET = (request: Request) => handler(request)
export const POST = (request: Request) => handler(request)
