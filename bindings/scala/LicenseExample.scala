// A SoftClient4ES-style host: read the `softclient4es.license` block of the application
// config, hand it to lic4es as JSON, and report the tier and status.
//
//   scalac -cp lic4es.jar:typesafe-config.jar LicenseExample.scala
//   scala -cp lic4es.jar:typesafe-config.jar:. LicenseExample [application.conf]

import java.io.File

import java.util.logging.Level

import com.typesafe.config.{ConfigFactory, ConfigRenderOptions}
import io.lic4es.{LicenseEngine, LicenseException, LogSink, Tier}

object LicenseExample {
  def main(args: Array[String]): Unit = {
    val config =
      if (args.nonEmpty) ConfigFactory.parseFile(new File(args(0))).resolve()
      else ConfigFactory.load()
    // Exactly what SoftClient4ES passes: the block rendered as concise JSON.
    val json = config.getConfig("softclient4es.license").root().render(ConfigRenderOptions.concise())

    LicenseEngine.setLogSink(new LogSink {
      def log(level: Level, message: String): Unit = println(s"[lic4es] $level $message")
    })
    val handle =
      try LicenseEngine.open(json)
      catch {
        case e: LicenseException =>
          System.err.println(s"license config rejected (${e.codeName}): ${e.getMessage}")
          sys.exit(2)
      }
    try {
      val tier = LicenseEngine.currentTier()
      println(s"tier: $tier")
      if (tier.atLeast(Tier.PRO)) println(s"max clusters: ${LicenseEngine.quota("max_clusters")}")
      println(s"status: ${LicenseEngine.statusJson()}")
    } finally handle.close()
  }
}
