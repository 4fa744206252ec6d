import { defineZuno } from '../../src/index'

/**
 * Two stores and two actions for answers that run ahead of a stream: `move` writes both stores,
 * `touchRight` writes `right` unchanged, so its answer carries `right` as the server has it.
 */
export const touchApp = defineZuno({
  stores: { left: { initial: 10 }, right: { initial: 0 } },
  actions: {
    move: {
      run: (tx) => {
        tx.set('left', (n) => n - 1)
        tx.set('right', (n) => n + 1)
      },
    },
    touchRight: { run: (tx) => tx.set('right', (n) => n) },
  },
})
