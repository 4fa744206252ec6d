// The browser side of credentials.browser: a replica whose token the test sets through `window.token`.
import { connect } from 'zuno'

const page = window as unknown as { token: string; replica: ReturnType<typeof connect> }
page.token = 'expired'
page.replica = connect({ url: '/zuno', token: () => page.token, tabs: false })
