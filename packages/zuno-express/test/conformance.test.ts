import express from 'express'
import { runConformanceSuite } from '../../zuno/test/conformance/suite'
import { startExpress } from './startExpress'

runConformanceSuite({ name: 'Express', start: (config) => startExpress(config) })

runConformanceSuite({
  name: 'Express after express.json()',
  start: (config) => startExpress(config, (app) => app.use(express.json({ limit: '10mb' }))),
})
