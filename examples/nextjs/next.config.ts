import type { NextConfig } from 'next'

// Off, because Next refuses the `dynamic` and `runtime` exports of the page and the route when it is on.
const nextConfig: NextConfig = {
  cacheComponents: false,
}

export default nextConfig
