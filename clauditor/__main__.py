from clauditor.cli import main

main()
